# shellcheck shell=bash
# Shared by the action's scripts: messages as GitHub workflow commands, and writing step outputs.
# Sourced, never run. Nothing here echoes a variable that could hold a secret.

# An error annotation on the job, then the caller exits.
error() {
  printf '::error title=grattr action::%s\n' "$(command_escape "$*")" >&2
}

warning() {
  printf '::warning title=grattr action::%s\n' "$(command_escape "$*")" >&2
}

# Escapes a message for a workflow command, as GitHub's toolkit does, so that text we print
# cannot end the command early or start another one on a new line.
command_escape() {
  local text=$1
  text=${text//'%'/'%25'}
  text=${text//$'\r'/'%0D'}
  text=${text//$'\n'/'%0A'}
  printf '%s' "$text"
}

# Sets a step output (GITHUB_OUTPUT); values here are ours (true/false, paths we chose).
set_output() {
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
  fi
}

# Prints a file to the log with workflow commands off, so that text from a pull request
# (group ids, values, file names) cannot issue `::add-mask::`, `::error::` and the like.
print_inert() {
  local token
  token=$(inert_token)
  printf '::stop-commands::%s\n' "$token"
  cat -- "$1"
  printf '\n::%s::\n' "$token"
}

# Runs a command with workflow commands off for everything it prints, both streams on stdout
# (two pipes reach the runner in no guaranteed order, so a line on stderr could arrive after
# the stretch ended). Returns the command's status.
inert() {
  local token status=0
  token=$(inert_token)
  printf '::stop-commands::%s\n' "$token"
  "$@" 2>&1 || status=$?
  printf '\n::%s::\n' "$token"
  return "$status"
}

# A token no text can guess, to end a stretch of output with workflow commands off.
inert_token() {
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# The work directory for temporary files of this step.
scratch_dir() {
  mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/grattr-action.XXXXXX"
}

# Enters GRATTR_WORKING_DIRECTORY and reads GRATTR_ENVIRONMENT into `environment` and the
# `args` grattr is run with (`--env NAME`, or none). The input decides the environment, not a
# GRATTR_ENV the job may have set. A name outside [A-Za-z0-9_.-] is refused: it reaches a
# comment marker and the log.
# shellcheck disable=SC2034 # environment and args are the caller's
enter_workspace() {
  cd -- "${GRATTR_WORKING_DIRECTORY:-.}" || exit 1
  environment=${GRATTR_ENVIRONMENT:-}
  if [[ ! "$environment" =~ ^[A-Za-z0-9_.-]*$ ]]; then
    error "environment must be letters, digits, '_', '.' or '-'"
    exit 1
  fi
  unset GRATTR_ENV
  args=()
  if [[ -n "$environment" ]]; then
    args=(--env "$environment")
  fi
}

# Reads GRATTR_RECORD (the `record` input) into `shared`: false for `lockfile` (the default:
# grattr.lock in the repository), true for `shared` once grattr confirms that its
# configuration (GRATTR_STATE, or grattr.yaml's state:) names a shared store and that the
# store opens with the credentials this step has (PGPASSWORD). Asking grattr, rather than
# reading GRATTR_STATE here, covers a state: in grattr.yaml and an --env of its own.
# Returns 1, after an error annotation, when it does not. Needs $work and $args.
# shellcheck disable=SC2034,SC2154 # shared is the caller's, and so are work and args
record_mode() {
  local shown store
  case "${GRATTR_RECORD:-lockfile}" in
    lockfile)
      shared=false
      if [[ -n "${GRATTR_STATE:-}" ]]; then
        error "GRATTR_STATE is set, but the record input is lockfile: give record: shared to use the shared record"
        return 1
      fi
      return 0
      ;;
    shared) shared=true ;;
    *)
      error "record must be lockfile or shared"
      return 1
      ;;
  esac
  # The store's address and the database's answers are configuration and server text:
  # printed with workflow commands off. grattr never prints the password.
  if ! shown=$(grattr state show "${args[@]}" --format json 2>"$work/state.err"); then
    print_inert "$work/state.err"
    error "record: shared, but the shared record cannot be opened (see the log): the step needs GRATTR_STATE (or state: in grattr.yaml) and its credentials (PGPASSWORD, or AWS_* for a bucket); a pull request from a fork gets no secrets"
    return 1
  fi
  store=$(jq -r '.store // empty' <<<"$shown")
  if [[ -z "$(jq -r '.version // empty' <<<"$shown")" ]]; then
    error "record: shared, but GRATTR_STATE and grattr.yaml's state: names no shared store (the record would be the local file); a pull request from a fork gets no secrets"
    return 1
  fi
  printf 'The shared record: %s\n' "$store" >"$work/store.txt"
  print_inert "$work/store.txt"
}
