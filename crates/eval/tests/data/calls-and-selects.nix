# Builtins given all their arguments at once are called directly; partial
# applications, extra arguments and selections on variables (borrowed from
# their frame) must behave as the curried calls and cloned values they replace.
let
  f = builtins.elemAt [ 10 20 30 ];
  g = builtins.foldl' builtins.add;
  s = { x.y = 2; z = { }; };
  t = with s; x.y;
in
[
  (f 1)
  (g 0 [ 1 2 3 ])
  (builtins.foldl' builtins.add 0 [ 4 5 ])
  ((builtins.foldl' builtins.add) 10 [ 1 ])
  (builtins.substring 1 2 "abcd")
  (map (builtins.add 1) [ 1 2 ])
  (builtins.getAttr "f" { f = x: x * 2; } 5)
  (builtins.tryEval (builtins.addErrorContext "ctx" (throw "boom"))).success
  s.x.y
  (s.z.q or 3)
  (s.x.y.w or 4)
  (s ? x.y)
  t
  (with { a = { b = 1; }; }; with { c = 2; }; a.b + c)
]
