# A value in an error message: at most ten list items (and ten attributes)
# are printed in all, an item counted after its own contents, and sets and
# lists nested ten deep are shown as `{ ... }` / `[ ... ]` (C++ Nix's
# printer options for errors).
"" + (let v = [ [ 1 2 3 4 5 6 7 8 ] [ 1 2 3 4 ] { a = { b = { c = { d = { e = { f = { g = { h = { i = { j = { }; }; }; }; }; }; }; }; }; }; } ]; in builtins.deepSeq v v)
