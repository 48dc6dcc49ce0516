# The shared builder of the test package set: lists what it was given.
set -e
mkdir -p "$out"
echo "$name" > "$out/name"
for d in $deps; do echo "$d" >> "$out/deps"; done
if [ -n "$src" ]; then cp -r "$src" "$out/src"; fi
