#!/usr/bin/env bash
# Draws the README's pictures in docs/img again, from the commands a user has (about a
# minute and a half on 2 cores: most of it is the default training run), and the screenshots
# of the HTML pages (they need Chromium, chromedriver and selenium; see docs/make_screenshots.py).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tinyformer > /dev/null || { echo "install tinyformer first: pip install -e ." >&2; exit 2; }
run="$(mktemp -d)/gpt-builtin"
tinyformer train --out "$run" > "$run.log" 2>&1      # the log: for the README's figures
tinyformer plot "$run" --out docs/img/builtin-loss.png
tinyformer attention --checkpoint "$run" --out docs/img/attention.png \
    --prompt "eve has a red kite. it rained. the kite of eve is "
tinyformer graph --example gpt --out docs/img/gpt-forward.png
tinyformer graph --example layernorm --what backward --out docs/img/layernorm-backward.png
tinyformer graph --checkpoint "$run" --prompt "eve has a red kite." --what backward --depth 2 \
    --out docs/img/gpt-backward.png
python docs/make_screenshots.py "$run" docs/img
echo "the run and its log, whose figures the README quotes: $run, $run.log"
