# `big // small` stacks layers (up to 16, then flattens): lookups, `?`,
# counts, iteration and overrides must equal a plain merge.
let
  big = builtins.listToAttrs (builtins.genList (i: { name = "a${toString i}"; value = i; }) 200);
  # 20 small updates: each overrides one name and adds one
  step = s: i: s // { "a${toString i}" = -i; "new${toString i}" = i * 10; };
  layered = builtins.foldl' step big (builtins.genList (i: i) 20);
  seven = builtins.foldl' step big (builtins.genList (i: i) 7);
  over = seven // { a3 = "top"; };
in
{
  n = builtins.length (builtins.attrNames layered);
  n7 = builtins.length (builtins.attrNames seven);
  a0 = layered.a0;
  a5 = seven.a5;
  a19 = layered.a19;
  a150 = layered.a150;
  new19 = layered.new19;
  has = [ (layered ? new0) (layered ? new20) (seven ? new6) (seven ? new7) ];
  first = builtins.head (builtins.attrNames seven);
  vals = builtins.foldl' (a: b: a + b) 0 (builtins.attrValues seven);
  over3 = over.a3;
  removed = builtins.attrNames (removeAttrs seven (builtins.genList (i: "a${toString (i + 2)}") 198));
  inter = builtins.intersectAttrs { new3 = null; a4 = null; zz = null; } seven;
  mapped = (builtins.mapAttrs (n: v: if builtins.isInt v then v + 1 else v) seven).new6;
  eq = seven == (builtins.listToAttrs (map (n: { name = n; value = seven.${n}; }) (builtins.attrNames seven)));
}
