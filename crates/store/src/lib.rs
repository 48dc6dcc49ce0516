//! ferrix-store: Nix store paths on top of castore (PathInfo, NAR rendering and import).
