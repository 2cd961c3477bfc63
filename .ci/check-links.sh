#!/usr/bin/env bash
# Every relative link in the project's Markdown resolves: links to files and
# folders, and #anchors, in the same page or another (README.md, CHANGELOG.md,
# docs/, examples/, fuzz/, patches/*/PATCH.md). remark-validate-links checks
# them offline, with GitHub's heading slugs; web links are not fetched.
# patches/amq-protocol-types/README.md is upstream's own and links into
# upstream's source tree, so it is left out.
#
#   .ci/check-links.sh          # from anywhere; exits 1 naming each broken link
#
# The tools live in .ci/node (git-ignored node_modules; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

remark=.ci/node/node_modules/.bin/remark
if [[ ! -x $remark ]]; then
  npm ci --prefix .ci/node --loglevel=error --no-audit --no-fund >/dev/null
fi

mapfile -d '' files < <(git ls-files -z -- '*.md' ':!:patches/amq-protocol-types/README.md')
"$remark" --rc-path .ci/node/remark-links.json --no-stdout --frail --quiet --no-color "${files[@]}"
echo "links: every relative link and anchor in ${#files[@]} Markdown files resolves"
