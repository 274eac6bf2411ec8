# The start the study's scripts share (sourced, with the script's arguments): with no argument,
# -h or --help, print the calling script's header comment as its usage; then go to the repository
# root and name the study's folders.
usage() {  # the comment above the script's `set` line, without its '# '
  sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
}
case ${1:-} in
  "" | -h | --help) usage; exit 0 ;;
esac
cd "$(dirname "$0")/../.."
HERE=experiments/evidence
RUNS=runs/evidence
