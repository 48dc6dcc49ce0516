#!/usr/bin/env bash
# Regenerate eval-fixtures.tsv (expression<TAB>C++ Nix's --eval --strict
# output) from eval-exprs.txt with C++ Nix 2.8's nix-instantiate.
set -euo pipefail
cd "$(dirname "$0")"
while IFS= read -r e; do
    [[ -z $e ]] && continue
    printf '%s\t%s\n' "$e" "$(nix-instantiate --eval --strict -E "$e")"
done < eval-exprs.txt > eval-fixtures.tsv
