#!/usr/bin/env bash
# The nightly rollout: for every image the matrix published (not "unchanged"), roll it into
# clusters/$PROJECT/ (capi-image manifests, in place), keep its SBOM in sboms/$PROJECT/, and open
# or update the project's rollout pull request, whose body is `capi-image diff -o markdown`
# between the image the clusters used (its SBOM from sboms/, committed by the previous rollout)
# and the new one.
#
# Usage: rollout-pr.sh dist/matrix.json        (env: PROJECT; gh and git authenticated)
# CAPI_IMAGE overrides the capi-image command, BASE the pull request's base branch (main).
set -euo pipefail

summary=$1
capi=${CAPI_IMAGE:-.venv/bin/capi-image}
base=${BASE:-main}
branch="image-rollout/$PROJECT"
clusters="clusters/$PROJECT"
sboms="sboms/$PROJECT"

if [ ! -d "$clusters" ]; then
  echo "no $clusters: nothing to roll out"
  exit 0
fi

# published build manifests, one per line (python3: on every runner, unlike jq on every machine)
mapfile -t manifests < <(python3 -c '
import json, sys
for b in json.load(open(sys.argv[1]))["builds"]:
    if b["status"] == "published" and not b.get("unchanged"):
        print(b["manifest"])
' "$summary")
if [ "${#manifests[@]}" -eq 0 ]; then
  echo "no new image for $PROJECT: no rollout"
  exit 0
fi

field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = (d or {}).get(k)
print(d or "")' "$1" "$2"; }

mkdir -p "$sboms" dist
body=dist/rollout-pr.md
echo "Nightly node images for \`$PROJECT\`, rolled into \`$clusters/\` by \`capi-image manifests\`." >"$body"
for manifest in "${manifests[@]}"; do
  name=$(field "$manifest" caph_image_name)
  previous=$(field "$manifest" sbom.compared_with.caph_image_name)
  "$capi" manifests --from "$manifest" --cluster "$clusters" >/dev/null
  cp "$(field "$manifest" sbom.path)" "$sboms/$name.cdx.json"
  echo >>"$body"
  if [ -n "$previous" ] && [ -f "$sboms/$previous.cdx.json" ]; then
    "$capi" diff "$sboms/$previous.cdx.json" "$manifest" -o markdown >>"$body"
  else
    printf '### `%s`\n\nNo SBOM of the image before it in %s: nothing to compare.\n' "$name" "$sboms" >>"$body"
  fi
done

git checkout -B "$branch"
git add "$clusters" "$sboms"
git -c user.name="capi-image nightly" -c user.email="capi-image@users.noreply.github.com" \
  commit -q -m "Roll $PROJECT to new node images" -m "$(cat "$body")"
git push -q --force origin "$branch"
title="Roll $PROJECT to new node images"
if gh pr view "$branch" >/dev/null 2>&1; then
  gh pr edit "$branch" --title "$title" --body-file "$body"
else
  gh pr create --base "$base" --head "$branch" --title "$title" --body-file "$body"
fi
