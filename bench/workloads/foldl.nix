# A strict left fold over a list of 10^6 integers.
builtins.foldl' (acc: x: acc + x * 2) 0 (builtins.genList (i: i) 1000000)
