# Sets nested ten deep in an error message print as `{ ... }`.
"" + (let v = { x = 1; a = { b = { c = { d = { e = { f = { g = { h = { i = { j = { k = 1; }; }; }; }; }; }; }; }; }; }; }; in builtins.deepSeq v v)
