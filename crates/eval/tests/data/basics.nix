let
  fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2);
  attrs = { a.b.c = 1; a.b.d = 2; "quoted name" = 3; };
in {
  inherit attrs;
  fib = fib 15;
  str = "x${toString (fib 10)}y";
  rec_ = rec { x = 1; y = x + 1; };
  with_ = with { z = 5; }; z * 2;
  has = attrs ? a.b.c;
  sel = attrs.a.nope or "default";
  neg = -(3);
  float = 1.0 / 4;
  cmp = [ (1 < 2) ("a" < "b") ([ 1 2 ] < [ 1 3 ]) ];
}
