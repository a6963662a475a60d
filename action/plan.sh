#!/usr/bin/env bash
# plan mode: validate (errors as annotations), plan as Markdown, and show the plan in ONE
# pull-request comment updated in place and in the job summary. Any failure (validation, a
# grattr that dies, this script) replaces the comment with what failed, so a stale plan never
# stays up, and fails the step. A pull request is planned against the base branch's lockfile,
# and one that edits the lockfile is flagged and fails unless labelled (see base.sh). A plan the
# safety guard refuses (what apply would refuse after merge) says so at the top of the comment
# and fails unless the pull request carries the force label, a reviewer's deliberate act that
# makes the apply on merge pass --force (see apply.sh). With GRATTR_RECORD=shared the plan
# reads the shared record (a PostgreSQL store, read with the step's GRATTR_STATE and
# PGPASSWORD) instead: no lockfile is in the repository to compare with or to flag.
#
# In: GRATTR_WORKING_DIRECTORY, GRATTR_ENVIRONMENT, GRATTR_GITHUB_TOKEN,
# GRATTR_LOCKFILE_EDIT_LABEL (default grattr-lockfile-edit), GRATTR_FORCE_LABEL (default
# grattr:force; empty: no override), GRATTR_RECORD (lockfile or shared; see common.sh),
# GRATTR_STATE and PGPASSWORD (read by grattr itself; never printed here), and what GitHub sets:
# GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_EVENT_PATH, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT,
# GITHUB_SERVER_URL, GITHUB_RUN_ID, RUNNER_TEMP.
# Out: has-changes (true/false), plan-file (the Markdown that was posted), safety-verdict
# (approved/refused; empty when there is no plan).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$here/common.sh"
# shellcheck source=github.sh source-path=SCRIPTDIR
source "$here/github.sh"
# shellcheck source=base.sh source-path=SCRIPTDIR
source "$here/base.sh"

enter_workspace
marker='<!-- grattr-plan -->'
title='grattr'
if [[ -n "$environment" ]]; then
  marker="<!-- grattr-plan env=$environment -->"
  title="grattr ($environment)"
fi

work=$(scratch_dir)
plan_file="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/grattr-plan${environment:+-$environment}.md"
set_output plan-file "$plan_file"
set_output has-changes false
force_label=${GRATTR_FORCE_LABEL-grattr:force}
# It reaches the comment's HTML: no markup characters.
if [[ "$force_label" =~ [[:cntrl:]\`\<\>\&\"] ]]; then
  error "force-label must be one line without \` < > & or \""
  exit 1
fi
# Set once a body saying how this run ended went out (a plan, or what failed).
published=false

# Whatever ends the script with a failure before it published (a grattr killed half-way, a
# command failing under set -e), the comment must not go on showing an older plan.
on_exit() {
  local status=$?
  trap - EXIT
  if ((status != 0)) && ! $published; then
    published=true
    {
      printf '### %s: plan failed\n\n' "$title"
      printf 'The plan step stopped (exit %s) before it could show a plan; see the log of the run below.\n' "$status"
    } >"$work/failed.md" 2>/dev/null || true
    publish "$work/failed.md" || true
  fi
  rm -rf -- "$work"
  exit "$status"
}
trap on_exit EXIT

footer() {
  local head run_url=""
  head=$(pull_request_head)
  if [[ "${GITHUB_REPOSITORY:-}" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ && "${GITHUB_RUN_ID:-}" =~ ^[0-9]+$ ]]; then
    run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
  fi
  printf '\n<sub>'
  [[ -n "$head" ]] && printf 'For commit %s. ' "$head"
  [[ -n "$run_url" ]] && printf '[The run](%s).' "$run_url"
  printf '</sub>\n'
}

# Shows $1 (the body without the marker) everywhere: the log (inert), the job summary, the
# artifact's file, and the comment.
publish() {
  {
    printf '%s\n' "$marker"
    cat -- "$1"
    footer
  } >"$plan_file"
  published=true
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    # A step's summary holds at most 1 MiB.
    fit "$plan_file" "$work/summary.md" 1000000
    cat -- "$work/summary.md" >>"$GITHUB_STEP_SUMMARY"
  fi
  upsert_comment "$marker" "$plan_file"
}

# 1. validate: with --format github its errors become annotations on the files (its own
# workflow commands, escaped by grattr); anything else it says is the pull request's text.
status=0
grattr validate "${args[@]}" --format github 2>"$work/validate.err" || status=$?
if [[ -s "$work/validate.err" ]]; then
  print_inert "$work/validate.err"
fi
if ((status != 0)); then
  # The same problems as text, for the comment and the summary.
  NO_COLOR=1 grattr validate "${args[@]}" >"$work/errors.txt" 2>&1 || true
  {
    printf '### %s: validation failed\n\n' "$title"
    # shellcheck disable=SC2016 # backticks are Markdown here
    printf '`grattr validate` found problems, so there is no plan. Fix them and push again.\n\n'
    fenced "$work/errors.txt"
  } >"$work/body.md"
  publish "$work/body.md" || true
  error "validation failed: see the annotations and the plan comment"
  exit 1
fi

# 2. the record: a pull request's plan compares with the base branch's lockfile, or with the
# shared record, which only the apply on the default branch (or a watch) writes.
plan_args=()
edited=""
if ! record_mode; then
  {
    printf '### %s: plan failed\n\n' "$title"
    printf 'The shared record, which the plan compares with, cannot be read; see the log of the run below.\n'
  } >"$work/body.md"
  publish "$work/body.md" || true
  exit 1
fi
if ! $shared && [[ -n "$(pull_request_number)" ]]; then
  if ! read_base_record; then
    {
      printf '### %s: plan failed\n\n' "$title"
      printf 'The base branch'"'"'s lockfile, which the plan compares with, cannot be read; see the log of the run below.\n'
    } >"$work/body.md"
    publish "$work/body.md" || true
    exit 1
  fi
  plan_args=(--lockfile "$base_lockfile")
fi

# 3. plan: exit 2 means changes, 0 none, anything else an error.
status=0
# The same plan saved as JSON too: its `safety` object is the guard's verdict, read by jq
# rather than from the Markdown, whose text is the pull request's.
NO_COLOR=1 grattr plan "${args[@]}" "${plan_args[@]}" --format markdown --detailed-exitcode \
  --out "$work/plan.json" >"$work/plan.md" 2>"$work/plan.err" || status=$?
case "$status" in
  0 | 2) ;;
  *)
    {
      printf '### %s: plan failed\n\n' "$title"
      # shellcheck disable=SC2016 # backticks are Markdown here
      printf '`grattr plan` failed (exit %s), so there is no plan:\n\n' "$status"
      fenced "$work/plan.err"
    } >"$work/body.md"
    publish "$work/body.md" || true
    print_inert "$work/plan.err"
    error "grattr plan failed (exit $status)"
    exit 1
    ;;
esac

print_inert "$work/plan.md"
if ((status == 2)); then
  set_output has-changes true
fi
verdict=$(jq -r '.safety.verdict // empty' "$work/plan.json")
case "$verdict" in
  approved | refused) ;;
  *)
    error "grattr plan gave no safety verdict (grattr older than the action?)"
    exit 1
    ;;
esac
set_output safety-verdict "$verdict"
force_accepted=false
if [[ "$verdict" == refused ]] && has_label "$force_label"; then
  force_accepted=true
fi

# The refusal first, so that no one reads the groups and misses it.
refusal_note() {
  printf '### The safety guard refuses this plan

'
  # shellcheck disable=SC2016 # backticks are Markdown here
  printf 'After merge, `grattr apply` refuses a plan that updates or deletes more than `safety_threshold` of the groups the lockfile records, and applies nothing (see the verdict below the summary). '
  if $force_accepted; then
    # shellcheck disable=SC2016 # backticks are Markdown here
    printf 'A reviewer accepted it with the label <code>%s</code>: the apply on merge runs with `--force`, applying every change below.

' "$force_label"
  elif [[ -n "$force_label" ]]; then
    # shellcheck disable=SC2016 # backticks are Markdown here
    printf '**The check fails.** Split the change, or raise `safety_threshold` in `grattr.yaml` for it; or, once a reviewer has checked every group below, add the label <code>%s</code>: the apply on merge then runs with `--force`.

' "$force_label"
  else
    # shellcheck disable=SC2016 # backticks are Markdown here
    printf '**The check fails.** Split the change, or raise `safety_threshold` in `grattr.yaml` for it.

'
  fi
}

{
  if [[ "$verdict" == refused ]]; then
    refusal_note
  fi
  if [[ -n "$edited" ]]; then
    lockfile_edit_note
  fi
  cat -- "$work/plan.md"
} >"$work/body.md"
publish "$work/body.md"
failed=false
if [[ -n "$edited" ]] && ! $edit_accepted; then
  error "this pull request edits the lockfile $lockfile_path (see the plan comment): undo the edit${edit_label:+, or add the label $edit_label once it is reviewed}"
  failed=true
fi
if [[ "$verdict" == refused ]] && ! $force_accepted; then
  error "the safety guard refuses this plan, and apply would refuse it after merge (see the plan comment): split the change or raise safety_threshold${force_label:+, or add the label $force_label once a reviewer has checked every group}"
  failed=true
fi
if $failed; then
  exit 1
fi
