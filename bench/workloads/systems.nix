# lib.systems.elaborate of every example platform, forcing the parsed platform
# and the common predicates of each.
let
  lib = import <lib>;
  elaborated = lib.mapAttrs (name: sys: lib.systems.elaborate sys) lib.systems.examples;
  summary = p: [ p.parsed p.config p.system p.libc p.uname p.isLinux p.isDarwin p.is64bit p.isx86 p.isAarch64 p.isStatic p.emulatorAvailable ];
in
builtins.deepSeq (lib.mapAttrs (n: summary) elaborated) (builtins.length (builtins.attrNames elaborated))
