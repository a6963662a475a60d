# shellcheck shell=bash
# Talks to the GitHub REST API with curl and jq: keeps ONE pull-request comment per marker,
# created once and updated in place afterwards. Sourced, never run.
#
# Also finds the pull request that merged a commit, and its labels (apply mode).
#
# In: GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_EVENT_PATH, GRATTR_GITHUB_TOKEN, and $work,
# the caller's scratch directory.
# shellcheck disable=SC2154 # work is set by the script that sources this file

# A comment holds at most 65,536 characters; leave room for the note that says it was cut.
readonly COMMENT_LIMIT=60000

# Copies $1 to $2, cut at a line boundary before $3 bytes, with a note when it was cut.
fit() {
  local from=$1 to=$2 limit=$3
  if (($(wc -c <"$from") <= limit)); then
    cp -- "$from" "$to"
    return
  fi
  LC_ALL=C awk -v limit="$limit" '{ total += length($0) + 1; if (total > limit) exit; print }' "$from" >"$to"
  printf '\n\n*The plan is longer than this can hold and was cut here: the whole plan is in the job summary and the run'"'"'s grattr-plan artifact.*\n' >>"$to"
}

# Calls the API: $1 method, $2 path under the API, $3 a JSON file to send (optional).
# Writes the answer to $work/response and prints the HTTP status.
github_api() {
  local method=$1 path=$2 data=${3:-}
  local args=(--silent --show-error --retry 3 --request "$method"
    --header @"$work/auth"
    --header 'Accept: application/vnd.github+json'
    --header 'X-GitHub-Api-Version: 2022-11-28'
    --header 'Expect:'
    --output "$work/response" --write-out '%{http_code}')
  if [[ -n "$data" ]]; then
    args+=(--header 'Content-Type: application/json' --data-binary @"$data")
  fi
  curl "${args[@]}" -- "${GITHUB_API_URL:-https://api.github.com}$path"
}

# The pull request this run is for, or nothing (a push, a manual run).
pull_request_number() {
  local number=""
  if [[ -n "${GITHUB_EVENT_PATH:-}" && -f "$GITHUB_EVENT_PATH" ]]; then
    number=$(jq -r '.pull_request.number // empty' "$GITHUB_EVENT_PATH")
  fi
  if [[ "$number" =~ ^[0-9]+$ ]]; then
    printf '%s' "$number"
  fi
}

# The commit the pull request's plan is for, if the event names one (40 hex digits only).
pull_request_head() {
  local sha=""
  if [[ -n "${GITHUB_EVENT_PATH:-}" && -f "$GITHUB_EVENT_PATH" ]]; then
    sha=$(jq -r '.pull_request.head.sha // empty' "$GITHUB_EVENT_PATH")
  fi
  if [[ "$sha" =~ ^[0-9a-f]{40}$ ]]; then
    printf '%s' "$sha"
  fi
}

# The token goes to curl in a file, not on its command line, where other processes see it.
github_auth() {
  (umask 077 && printf 'Authorization: Bearer %s\n' "$GRATTR_GITHUB_TOKEN" >"$work/auth")
}

# A fence longer than any run of backticks in file $1, then its text, then the fence: the text
# cannot close it, and none of it is read as Markdown.
fenced() {
  local fence='```' longest
  # grep finds nothing in a file without backticks (an empty one): not a failure here.
  longest=$({ grep -o '`*' -- "$1" || true; } | awk '{ if (length($0) > max) max = length($0) } END { print max + 0 }')
  while ((${#fence} <= longest)); do fence+='`'; done
  printf '%stext\n' "$fence"
  cat -- "$1"
  printf '\n%s\n' "$fence"
}

# The pull request that merged commit $1 (its merge, squash or last rebased commit): prints
# `NUMBER LABELLED`, LABELLED being true when it carries the label $2 (compared as data, never
# printed or evaluated: label names are anyone-with-triage's text). Prints nothing for a commit
# no pull request merged (a push), without a token or when the API cannot say; warns then.
merged_pull_request() {
  local sha=$1 label=$2 repo=${GITHUB_REPOSITORY:-} status
  [[ "$sha" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ ]] || return 0
  if [[ ! "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ || -z "${GRATTR_GITHUB_TOKEN:-}" ]]; then
    return 0
  fi
  github_auth
  status=$(github_api GET "/repos/$repo/commits/$sha/pulls?per_page=100") || status=000
  if [[ "$status" != 200 ]]; then
    warning "could not find the pull request that merged $sha (HTTP $status): it counts as unlabelled"
    return 0
  fi
  if ! jq -r --arg sha "$sha" --arg wanted "$label" '
    [.[]? | select(.merged_at != null and .merge_commit_sha == $sha and ((.number | type) == "number"))][0]
    | select(. != null)
    | "\(.number) \($wanted != "" and ([.labels[]?.name] | index($wanted) != null))"' \
    "$work/response" >"$work/pull"; then
    warning "could not read the pull request that merged $sha: it counts as unlabelled"
    return 0
  fi
  grep -E '^[0-9]+ (true|false)$' "$work/pull" || true
}

# Creates or updates the one comment whose first line is $1 with the text of file $2, on pull
# request $3 (default: the event's). Returns 0 when posted or when there is nothing to post to;
# warns and returns 0 when the token may not comment (a fork's read-only token answers 403);
# returns 1 on other failures.
upsert_comment() {
  local marker=$1 body=$2 number=${3:-} repo status page=1 id="" count
  [[ -n "$number" ]] || number=$(pull_request_number)
  if [[ ! "$number" =~ ^[0-9]+$ ]]; then
    echo "Not a pull request: the result is in the job summary only."
    return 0
  fi
  repo=${GITHUB_REPOSITORY:-}
  if [[ ! "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]]; then
    error "GITHUB_REPOSITORY is not owner/name"
    return 1
  fi
  if [[ -z "${GRATTR_GITHUB_TOKEN:-}" ]]; then
    warning "no github-token: the result is in the job summary, not in a comment"
    return 0
  fi
  github_auth

  # Our comment: the first line is the marker, and a bot wrote it, so that a person who
  # quotes the marker does not have their comment overwritten.
  while :; do
    status=$(github_api GET "/repos/$repo/issues/$number/comments?per_page=100&page=$page")
    if [[ "$status" != 200 ]]; then
      comment_failed "$status" "list the comments of pull request #$number"
      return
    fi
    id=$(jq -r --arg marker "$marker" \
      '[.[] | select(.user.type == "Bot" and (((.body // "") | split("\n")[0] | rtrimstr("\r")) == $marker)) | .id][0] // empty' \
      "$work/response")
    count=$(jq 'length' "$work/response")
    if [[ -n "$id" || "$count" -lt 100 ]]; then
      break
    fi
    page=$((page + 1))
  done

  fit "$body" "$work/comment.md" "$COMMENT_LIMIT"
  jq -Rs '{body: .}' "$work/comment.md" >"$work/payload.json"
  if [[ "$id" =~ ^[0-9]+$ ]]; then
    status=$(github_api PATCH "/repos/$repo/issues/comments/$id" "$work/payload.json")
    [[ "$status" == 200 ]] || { comment_failed "$status" "update the comment"; return; }
    echo "Updated the comment on pull request #$number."
  else
    status=$(github_api POST "/repos/$repo/issues/$number/comments" "$work/payload.json")
    [[ "$status" == 201 ]] || { comment_failed "$status" "comment on pull request #$number"; return; }
    echo "Commented on pull request #$number."
  fi
}

# A 403 is a token that may not write (a pull request from a fork): warn, do not fail.
comment_failed() {
  local status=$1 what=$2
  if [[ "$status" == 403 ]]; then
    warning "could not $what (HTTP 403: the token is read-only, as for a pull request from a fork); the plan is in the job summary and the grattr-plan artifact"
    return 0
  fi
  error "could not $what (HTTP $status)"
  return 1
}
