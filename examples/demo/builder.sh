# Builder for the demo derivations: writes the greeting and the dependencies.
mkdir -p "$out"
cat "$greeting" > "$out/greeting"
for d in $deps; do echo "$d" >> "$out/deps"; done
