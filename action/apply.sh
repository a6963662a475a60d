#!/usr/bin/env bash
# apply mode: apply the newest desired state of the branch, then commit the lockfile and push
# it, rebasing and retrying when another apply's push got there first, so that no recorded
# success is lost when merges race. Commits also after a partial failure, then fails.
# Passes --force only when the pull request that merged the commit carried the force label (a
# reviewer's act, see plan.sh), and reports back on that pull request: ONE comment with what
# was applied, what failed and the run's link.
# With GRATTR_RECORD=shared the record is a shared store (PostgreSQL): grattr records each
# success there under the store's writer's lease (waiting up to GRATTR_LOCK_TIMEOUT while a
# watch cycle or another apply holds it), and nothing is committed or pushed.
#
# In: GRATTR_WORKING_DIRECTORY, GRATTR_ENVIRONMENT, GRATTR_LOCKFILE (default grattr.lock),
# GRATTR_BRANCH (default GITHUB_REF_NAME), GRATTR_REMOTE (default origin),
# GRATTR_PUSH_ATTEMPTS (default 5), GRATTR_PUSH_BACKOFF (seconds, default 2, times the attempt),
# GRATTR_FORCE_LABEL (default grattr:force; empty: never --force), GRATTR_GITHUB_TOKEN (finds
# the merged pull request and comments on it; without it, neither), GRATTR_RECORD (lockfile or
# shared; see common.sh), GRATTR_LOCK_TIMEOUT (shared: default 5m), GRATTR_SECRET_KEY,
# GRATTR_STATE and PGPASSWORD (read by grattr itself; never printed here), and what GitHub sets: GITHUB_SHA, GITHUB_API_URL,
# GITHUB_REPOSITORY, GITHUB_SERVER_URL, GITHUB_RUN_ID, GITHUB_STEP_SUMMARY.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$here/common.sh"
# shellcheck source=github.sh source-path=SCRIPTDIR
source "$here/github.sh"

enter_workspace
force_label=${GRATTR_FORCE_LABEL-grattr:force}
if [[ "$force_label" =~ [[:cntrl:]\`\<\>\&\"] ]]; then
  error "force-label must be one line without \` < > & or \""
  exit 1
fi
lockfile=${GRATTR_LOCKFILE:-grattr.lock}
remote=${GRATTR_REMOTE:-origin}
branch=${GRATTR_BRANCH:-${GITHUB_REF_NAME:-}}
attempts=${GRATTR_PUSH_ATTEMPTS:-5}
backoff=${GRATTR_PUSH_BACKOFF:-2}
if [[ -z "$branch" ]] || ! git check-ref-format --branch "$branch" >/dev/null 2>&1; then
  error "no branch to apply from and push to (set GITHUB_REF_NAME or the branch input)"
  exit 1
fi
if [[ ! "$attempts" =~ ^[1-9][0-9]*$ || ! "$backoff" =~ ^[0-9]+$ ]]; then
  error "GRATTR_PUSH_ATTEMPTS must be a positive number and GRATTR_PUSH_BACKOFF a number of seconds"
  exit 1
fi
lock_timeout=${GRATTR_LOCK_TIMEOUT:-5m}
if [[ ! "$lock_timeout" =~ ^[0-9]+(ms|s|m|h)$ ]]; then
  error "lock-timeout must be a duration such as 30s, 5m or 1h"
  exit 1
fi
if [[ "$lockfile" =~ [[:space:]] ]]; then
  error "the lockfile path must not contain spaces (it is written into .git/info/attributes)"
  exit 1
fi

# Commits are the bot's; environment variables rather than git config, so nothing persists.
export GIT_AUTHOR_NAME='github-actions[bot]' GIT_COMMITTER_NAME='github-actions[bot]'
export GIT_AUTHOR_EMAIL='41898282+github-actions[bot]@users.noreply.github.com'
export GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL

# The lockfile merge driver for the rebase below: records of different groups merge; a group
# recorded differently on both sides is a conflict (see the README). The attribute goes to
# .git/info/attributes so that it holds even where the repository has not committed the
# .gitattributes line yet, without changing the work tree.
git config merge.grattr-lock.name 'grattr lockfile merge driver'
git config merge.grattr-lock.driver 'grattr lockfile merge %O %A %B %P'
attributes=$(git rev-parse --git-path info/attributes)
mkdir -p -- "$(dirname -- "$attributes")"
line="/$(git rev-parse --show-prefix)$lockfile merge=grattr-lock"
if ! grep -qxF -- "$line" "$attributes" 2>/dev/null; then
  printf '%s\n' "$line" >>"$attributes"
fi

tracking="refs/remotes/$remote/$branch"
# Every git command that talks to the remote or merges prints text we do not control (the
# remote's messages, the merge driver's lines naming group ids): inert, like grattr's output.
fetch() {
  inert git fetch --quiet "$remote" "+refs/heads/$branch:$tracking"
}

# Leaves the recorded successes on a branch of their own when they cannot reach $branch.
rescue() {
  local rescue_branch="grattr-rescue/${GITHUB_RUN_ID:-$$}"
  if inert git push --quiet "$remote" "HEAD:refs/heads/$rescue_branch"; then
    pushed="they are on the branch $rescue_branch, to merge by hand."
    error "the lockfile with this run's records is on the branch $rescue_branch: merge it into $branch"
  else
    pushed="they could not be pushed anywhere; see the run's log for what was applied."
    error "the lockfile with this run's records could not be pushed anywhere; see this job's log for what was applied"
  fi
}

work=$(scratch_dir)
# What each apply printed (escaped for a terminal by grattr), for the report on the pull request.
: >"$work/applied.txt"
# The pull requests that merged the commits this run applies: "NUMBER LABELLED" lines.
: >"$work/pulls"
report_to=""
pushed=""
applied_sha=""

# Whether the run's own commit (the merge that started it) or the commit about to be applied
# ($1) was merged by a pull request carrying the force label. Either merge passed its plan
# check, refused ones only with the label, so the label covers what the two bring together.
# Also remembers the pull request to report back to: the run's own, else the applied commit's.
force_for() {
  local sha pull
  for sha in "${GITHUB_SHA:-}" "$1"; do
    # Each commit is asked about once a run.
    [[ -n "$sha" ]] && ! grep -qxF -- "$sha" "$work/asked" 2>/dev/null || continue
    printf '%s\n' "$sha" >>"$work/asked"
    pull=$(merged_pull_request "$sha" "$force_label")
    [[ -n "$pull" ]] || continue
    printf '%s\n' "$pull" >>"$work/pulls"
    [[ -n "$report_to" ]] || report_to=${pull%% *}
  done
  [[ -n "$force_label" ]] && grep -q ' true$' "$work/pulls"
}

# grattr apply, its output also kept for the report.
# shellcheck disable=SC2317 # run through inert
apply_logged() {
  local status
  NO_COLOR=1 grattr apply "$@" 2>&1 | tee -a "$work/applied.txt"
  status=${PIPESTATUS[0]}
  return "$status"
}

apply_status=0
run_apply() {
  local status=0 force=()
  applied_sha=$(git rev-parse "$tracking")
  if force_for "$applied_sha"; then
    force=(--force)
    echo "The pull request that merged this carries the label $force_label: applying with --force."
  fi
  printf '$ grattr apply%s\n' "${force:+ --force}" >>"$work/applied.txt"
  # apply prints group ids and values from the desired state: with workflow commands off, a
  # line of theirs cannot become a command to the runner.
  inert apply_logged "${args[@]}" "${force[@]}" "${wait_for_lease[@]}" --yes || status=$?
  if ((status != 0 && apply_status == 0)); then
    apply_status=$status
  fi
}

# shellcheck disable=SC2317 # called from the EXIT trap
# The report on the merged pull request, and in the job summary: how the run ended, what grattr
# apply printed (what was applied and what failed), where the records went, and the run's link.
report() {
  local status=$1 heading marker='<!-- grattr-apply -->' run_url=""
  [[ -n "$environment" ]] && marker="<!-- grattr-apply env=$environment -->"
  if [[ "${GITHUB_REPOSITORY:-}" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ && "${GITHUB_RUN_ID:-}" =~ ^[0-9]+$ ]]; then
    run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
  fi
  heading="grattr apply${environment:+ ($environment)}"
  # At most 50,000 bytes of it, from the end: the failures and the totals come last.
  if (($(wc -c <"$work/applied.txt") > 50000)); then
    tail -c 50000 -- "$work/applied.txt" | tail -n +2 >"$work/applied.cut"
    printf '(the start is cut; the whole output is in the run'"'"'s log)\n' | cat - "$work/applied.cut" >"$work/applied.txt"
  fi
  {
    printf '%s\n' "$marker"
    if ((status == 0)); then
      printf '### %s: applied\n\n' "$heading"
    else
      printf '### %s: failed (exit %s)\n\n' "$heading" "$status"
    fi
    if [[ -n "$applied_sha" ]]; then
      printf 'Applied %s at %s.' "$branch" "$applied_sha"
    else
      printf 'Stopped before applying %s.' "$branch"
    fi
    case "$pushed" in
      "") printf ' The lockfile did not change.\n\n' ;;
      shared) printf ' Each success is recorded in the shared record.\n\n' ;;
      "$branch") printf ' The lockfile was pushed to %s.\n\n' "$branch" ;;
      *) printf ' The records could not reach %s: %s\n\n' "$branch" "$pushed" ;;
    esac
    if [[ -s "$work/applied.txt" ]]; then
      fenced "$work/applied.txt"
    else
      printf 'Nothing was applied.\n'
    fi
    [[ -n "$run_url" ]] && printf '\n<sub>[The run](%s).</sub>\n' "$run_url"
  } >"$work/report.md"
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    fit "$work/report.md" "$work/summary.md" 1000000
    cat -- "$work/summary.md" >>"$GITHUB_STEP_SUMMARY"
  fi
  if [[ -n "$report_to" ]]; then
    upsert_comment "$marker" "$work/report.md" "$report_to" || true
  fi
}

# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  local status=$?
  trap - EXIT
  report "$status" || true
  rm -rf -- "$work"
  exit "$status"
}
trap on_exit EXIT

shared=false
record_mode || exit 1
wait_for_lease=()
if $shared; then
  wait_for_lease=(--lock-timeout "$lock_timeout")
fi

# Whether grattr can plan from the checkout; its diagnostics are printed, the plan is not.
# shellcheck disable=SC2317 # run through inert
plan_quietly() {
  grattr plan "${args[@]}" >/dev/null
}

# Returns 1 when there is nothing new to commit.
commit_lockfile() {
  [[ -e "$lockfile" ]] || return 1
  git add -- "$lockfile"
  if git diff --cached --quiet; then
    return 1
  fi
  git commit --quiet -m "grattr: record applied state${environment:+ ($environment)}"
}

# Start from the branch's newest commit, not the one that triggered the run: a re-run after a
# race, or a run queued behind another apply, applies the newest desired state.
fetch
git checkout --quiet --force --detach "$tracking"
echo "Applying $branch at $(git rev-parse --short HEAD)"
run_apply
if $shared; then
  pushed=shared
  echo "Each success is recorded in the shared record: nothing to commit."
  exit "$apply_status"
fi
if ! commit_lockfile; then
  echo "The lockfile did not change: nothing to push."
  exit "$apply_status"
fi

attempt=1
until inert git push --quiet "$remote" "HEAD:refs/heads/$branch"; do
  if ((attempt >= attempts)); then
    error "pushing the lockfile to $branch failed $attempts times"
    rescue
    exit 1
  fi
  sleep $((backoff * attempt))
  attempt=$((attempt + 1))
  before=$(git rev-parse "$tracking")
  fetch
  if [[ "$(git rev-parse "$tracking")" == "$before" ]]; then
    # Nothing raced us: retrying cannot help. Most often a branch protection rule.
    error "the push to $branch was refused, and $branch did not move: is it protected? (see the README: branch protection)"
    rescue
    exit 1
  fi
  echo "$branch moved: rebasing the lockfile onto it (attempt $attempt of $attempts)"
  if ! inert git rebase --quiet "$tracking"; then
    inert git rebase --abort || true
    error "the lockfile could not be merged with the one on $branch (the same group recorded differently on both sides)"
    rescue
    exit 1
  fi
  # Never push a lockfile grattr cannot read (a bad merge).
  if ! inert plan_quietly; then
    error "after the rebase, grattr cannot plan from $branch's newest commit; not pushing"
    rescue
    exit 1
  fi
  # The rebase may have brought new desired state: converge, so the lockfile pushed records
  # what is live for the commit it is pushed with. With nothing new this makes no API call.
  run_apply
  commit_lockfile || true
done
pushed=$branch
echo "Pushed the lockfile to $branch."
exit "$apply_status"
