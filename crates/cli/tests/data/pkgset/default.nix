# A small, realistic package set for the oracle test (crates/cli/tests/fetch_oracle.rs):
# a dozen derivations built by one shared builder script, sources imported
# from ./src, a fixed-output fetch (<nix/fetchurl.nix>) and eval-time fetches
# (builtins.fetchurl, builtins.fetchTarball) from the test's HTTP server.
{ server }:
let
  system = "x86_64-linux";

  mkPkg = { name, deps ? [ ], ... }@args:
    derivation ({
      inherit system;
      builder = "/bin/sh";
      args = [ "-e" ./builder.sh ];
      deps = map (d: "${d}") deps;
    } // removeAttrs args [ "deps" ]);

  noTmp = path: type: !(builtins.match ".*\\.tmp" (baseNameOf path) != null);

  pkgs = rec {
    fixPatch = import <nix/fetchurl.nix> {
      url = "${server}/fix.patch";
      sha256 = "089rydfknwmf0h3297xz4ql8b63v60zgii513y9xk2cy7cxyhgx3";
    };

    notes = builtins.fetchurl {
      url = "${server}/NOTES";
      sha256 = "1qfs7bdk26a054kpbr16lpqcj2wm23j4wx7qs80kriqivmnb39qf";
    };

    extraSrc = builtins.fetchTarball {
      url = "${server}/extra.tar.gz";
      sha256 = "1mhh52nh398n3agqsn1ixp0cqxps40l7vkm0iai3x83r2r9c7v4d";
    };

    libfoo = mkPkg { name = "libfoo-1.0"; src = ./src/libfoo; };

    libbar = mkPkg {
      name = "libbar-2.1";
      src = builtins.path { path = ./src/libbar; name = "libbar-src"; };
      deps = [ libfoo ];
    };

    libbaz = mkPkg { name = "libbaz-0.3"; src = ./src/libbaz; deps = [ libfoo libbar ]; };

    tool = mkPkg {
      name = "tool-1.2";
      src = ./src/tool;
      outputs = [ "out" "dev" "man" ];
    };

    app = mkPkg {
      name = "app-3.0";
      src = ./src/app;
      patches = [ fixPatch ];
      deps = [ libbar libbaz tool.dev ];
      nativeBuildInputs = [ tool ];
    };

    docs = mkPkg {
      name = "docs";
      src = builtins.filterSource noTmp ./src/docs;
      releaseNotes = notes;
    };

    extra = mkPkg { name = "extra-1.0"; src = extraSrc; version = builtins.readFile "${extraSrc}/VERSION"; };

    config = mkPkg {
      name = "app-config";
      deps = [ app docs ];
      configFile = builtins.toFile "app.conf" ''
        notes = ${notes}
        sources = ${./src/app}
      '';
    };

    structured = mkPkg {
      name = "structured";
      __structuredAttrs = true;
      settings = { level = 3; tags = [ "a" "b" ]; };
      deps = [ libfoo ];
    };

    tests = mkPkg {
      name = "app-tests";
      deps = [ app tool.man ];
      placeholderOut = builtins.placeholder "out";
    };

    wrapper = mkPkg {
      name = "app-wrapped";
      deps = [ app config ];
      passAsFile = [ "wrapperScript" ];
      wrapperScript = "exec ${app}/bin/app --config ${config}";
    };

    bundle = mkPkg {
      name = "bundle";
      deps = [ wrapper docs extra structured tests ];
    };
  };
in
pkgs
