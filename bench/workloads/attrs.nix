# Attribute-set heavy: listToAttrs / mapAttrs / `//` chains over 10^5 attributes,
# then a toJSON / fromJSON round trip.
let
  n = 100000;
  names = builtins.genList (i: "a${toString i}") n;
  base = builtins.listToAttrs (map (k: { name = k; value = 1; }) names);
  mapped = builtins.mapAttrs (k: v: v + 1) base;
  half = builtins.listToAttrs (map (k: { name = k; value = 5; }) (builtins.genList (i: "a${toString (i * 2)}") (n / 2)));
  merged = builtins.foldl' (acc: s: acc // s) { } [ base mapped half { extra = 1; } mapped ];
  json = builtins.toJSON merged;
  back = builtins.fromJSON json;
in
builtins.foldl' (acc: k: acc + back.${k}) 0 (builtins.attrNames back)
