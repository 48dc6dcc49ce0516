# A tiny package set: a shared builder script imported from this directory,
# a text file made with toFile, and derivations that depend on each other.
{ system ? "x86_64-linux" }:
let
  mk = name: deps: derivation {
    inherit name system deps;
    builder = "/bin/sh";
    args = [ ./builder.sh ];
    greeting = builtins.toFile "greeting.txt" "hello from ${name}\n";
  };
in
rec {
  libfoo = mk "libfoo-1.0" [ ];
  libbar = mk "libbar-2.1" [ libfoo ];
  app = mk "app-0.1" [ libfoo libbar ];
}
