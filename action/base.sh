# shellcheck shell=bash
# The record a pull request's plan compares with: the lockfile of the branch it merges into,
# never the one in the pull request, which anyone can rewrite (its digests are unkeyed
# SHA-256 sums). And whether the pull request edits the lockfile. Sourced, never run.
#
# In: GITHUB_EVENT_PATH, GRATTR_LOCKFILE_EDIT_LABEL, $work, $args (grattr's --env), and the
# checkout (actions/checkout of a pull_request event: the merge commit GitHub made).
# Out: base_sha, lockfile_path, base_lockfile (the copy to plan against), edited (the paths
# the pull request changes, one a line; empty when none), edit_label, edit_accepted.
# shellcheck disable=SC2154,SC2034 # work and args are the caller's, and so are the values set here

# The commit the pull request merges into. The checkout is the merge commit GitHub made, whose
# first parent is the base branch's commit it was merged with and whose second is the pull
# request's head (read from the commit itself: in a shallow clone the parents are absent).
# Any other checkout falls back to the event's base.sha.
base_commit() {
  local head parents=() sha=""
  head=$(pull_request_head)
  mapfile -t parents < <(git cat-file commit HEAD 2>/dev/null | awk '/^$/ { exit } $1 == "parent" { print $2 }')
  if ((${#parents[@]} == 2)) && [[ -z "$head" || "${parents[1]}" == "$head" ]]; then
    sha=${parents[0]}
  elif [[ -n "${GITHUB_EVENT_PATH:-}" && -f "$GITHUB_EVENT_PATH" ]]; then
    sha=$(jq -r '.pull_request.base.sha // empty' "$GITHUB_EVENT_PATH")
  fi
  if [[ "$sha" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ ]]; then
    printf '%s' "$sha"
  fi
}

# Whether the pull request carries the label that accepts a lockfile edit.
has_label() {
  [[ -n "$1" && -n "${GITHUB_EVENT_PATH:-}" && -f "$GITHUB_EVENT_PATH" ]] &&
    jq -e --arg wanted "$1" '[.pull_request.labels[]?.name] | index($wanted) != null' "$GITHUB_EVENT_PATH" >/dev/null
}

# Copies the blob $1:./$2 to $3 when the commit has that file; returns 1 when it has not.
copy_blob() {
  [[ "$(git cat-file -t "$1:./$2" 2>/dev/null)" == blob ]] || return 1
  git cat-file blob "$1:./$2" >"$3"
}

# Fails (returns 1, after an error annotation) when the base record cannot be read: planning
# against the pull request's own lockfile instead would defeat the point.
read_base_record() {
  local journal name file base_copy
  edit_label=${GRATTR_LOCKFILE_EDIT_LABEL-grattr-lockfile-edit}
  # It reaches the comment's HTML: no markup characters.
  if [[ "$edit_label" =~ [[:cntrl:]\`\<\>\&\"] ]]; then
    error "lockfile-edit-label must be one line without \` < > & or \""
    return 1
  fi
  if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    error "the plan of a pull request needs its git checkout (actions/checkout) to read the base branch's lockfile"
    return 1
  fi
  base_sha=$(base_commit)
  if [[ -z "$base_sha" ]]; then
    error "cannot tell which commit the pull request merges into (no merge commit checked out, no base.sha in the event)"
    return 1
  fi
  if ! git cat-file -e "$base_sha^{commit}" 2>/dev/null; then
    # A shallow checkout (actions/checkout's default depth 1) has the merge commit alone.
    if ! git fetch --quiet --no-tags --depth=1 origin "$base_sha" >"$work/fetch.log" 2>&1; then
      print_inert "$work/fetch.log"
      error "cannot fetch the base commit $base_sha; give actions/checkout fetch-depth: 2 (see the README)"
      return 1
    fi
  fi

  # The lockfile grattr.yaml names, where the merged pull request puts it. The path reaches
  # git and the comment: plain characters only, inside the repository.
  if ! lockfile_path=$(grattr lockfile path "${args[@]}" 2>"$work/path.err"); then
    print_inert "$work/path.err"
    error "cannot read the lockfile's path from grattr.yaml"
    return 1
  fi
  if [[ ! "$lockfile_path" =~ ^[A-Za-z0-9._@+/-]+$ || "$lockfile_path" == /* || "/$lockfile_path/" == */../* ]]; then
    error "the lockfile's path must be inside the repository and made of letters, digits and . _ @ + / -"
    return 1
  fi
  name=${lockfile_path##*/}
  journal="${lockfile_path%"$name"}.$name.journal"

  # The base's lockfile and journal, copied under their own names (grattr reads the journal
  # beside the lockfile). An absent file stays absent: nothing recorded yet, a first pull request.
  base_copy="$work/base-branch"
  mkdir -p -- "$base_copy"
  base_lockfile="$base_copy/$name"
  edited=""
  for file in "$lockfile_path" "$journal"; do
    local copy="$base_copy/${file##*/}" in_base=true
    copy_blob "$base_sha" "$file" "$copy" || in_base=false
    # "Edits the lockfile": the checked-out merge result's file is not byte for byte the base
    # branch's (present on one side only, or different). A merge through the merge driver of
    # a pull request that recorded nothing itself gives back the base's bytes.
    if [[ -f "$file" ]]; then
      if ! $in_base || ! cmp -s -- "$file" "$copy"; then
        edited+="$file"$'\n'
      fi
    elif $in_base; then
      edited+="$file"$'\n'
    fi
  done
  edit_accepted=false
  if [[ -n "$edited" ]] && has_label "$edit_label"; then
    edit_accepted=true
  fi
}

# The Markdown that flags a lockfile edit, first in the comment.
lockfile_edit_note() {
  local file
  printf '### This pull request edits the lockfile\n\n'
  while IFS= read -r file; do
    [[ -n "$file" ]] && printf -- '- <code>%s</code>\n' "$file"
  done <<<"$edited"
  printf '\nThese files differ from the base branch'"'"'s (commit %s). The lockfile records what was applied; ' "$base_sha"
  printf 'only the apply job writes it, and a merge of it through the merge driver changes nothing here. '
  printf 'An edit in a pull request can make a later apply skip a change, or send one no plan showed. '
  printf 'The plan below compares the desired state with the base branch'"'"'s record, whatever this pull request'"'"'s lockfile says.\n\n'
  if $edit_accepted; then
    printf 'The edit was accepted by the label <code>%s</code>.\n\n' "$edit_label"
  elif [[ -n "$edit_label" ]]; then
    printf '**The check fails.** Undo the edit, or, once it is reviewed, add the label <code>%s</code> to accept it.\n\n' "$edit_label"
  else
    printf '**The check fails.** Undo the edit.\n\n'
  fi
}
