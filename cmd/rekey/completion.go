package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/policies"
)

// completeCommand is the hidden command the completion scripts call with
// the words typed so far (the last one being completed); it prints one
// candidate per line, or filesDirective when the shell should complete
// file names.
const completeCommand = "__complete"

const filesDirective = "__files__"

var shells = []string{"bash", "zsh", "fish"}

func (a *app) cmdCompletion(args []string) int {
	fs := a.flags("completion")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || !slices.Contains(shells, fs.Arg(0)) {
		fmt.Fprintf(a.stderr, "rekey completion: name a shell: bash, zsh or fish\n")
		return ExitConfig
	}
	switch fs.Arg(0) {
	case "bash":
		io.WriteString(a.stdout, bashCompletion)
	case "zsh":
		io.WriteString(a.stdout, zshCompletion)
	case "fish":
		io.WriteString(a.stdout, fishCompletion)
	}
	return ExitOK
}

const bashCompletion = `# bash completion for rekey. Load it with:
#   source <(rekey completion bash)
# or install it: rekey completion bash > /etc/bash_completion.d/rekey
_rekey() {
    local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\n' out
    out=$(rekey __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    if [[ "$out" == __files__ ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=($out)
    fi
}
complete -F _rekey rekey
`

const zshCompletion = `#compdef rekey
# zsh completion for rekey. Load it with:
#   autoload -U compinit && compinit; source <(rekey completion zsh)
# or install it as _rekey in a directory of $fpath.
_rekey() {
    local -a out
    out=("${(@f)$(rekey __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    out=(${out:#})
    if [[ "${out[1]}" == __files__ ]]; then
        _files
    else
        compadd -a out
    fi
}
if [[ "$funcstack[1]" == _rekey ]]; then
    _rekey "$@"
else
    compdef _rekey rekey
fi
`

const fishCompletion = `# fish completion for rekey. Load it with:
#   rekey completion fish | source
# or install it: rekey completion fish > ~/.config/fish/completions/rekey.fish
function __rekey_complete
    set -l words (commandline -opc) (commandline -ct)
    set -e words[1]
    set -l out (rekey __complete $words 2>/dev/null)
    if test "$out[1]" = __files__
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $out
    end
end
complete -c rekey -f -a '(__rekey_complete)'
`

// cmdComplete prints the candidates for the last of words (the words after
// "rekey" on the command line).
func (a *app) cmdComplete(words []string) int {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	for _, c := range a.candidates(done, cur) {
		if c == filesDirective || strings.HasPrefix(c, cur) {
			fmt.Fprintln(a.stdout, c)
		}
	}
	return ExitOK
}

func (a *app) candidates(done []string, cur string) []string {
	if len(done) == 0 {
		names := []string{"help"}
		for _, c := range commands {
			names = append(names, c.name)
		}
		if strings.HasPrefix(cur, "-") {
			return []string{"--help", "--version", "-h", "-v"}
		}
		return names
	}
	name, rest := done[0], done[1:]
	kind := positionalKinds[name]
	fs := a.flagSetOf(name, rest)
	if fs != nil && len(rest) > 0 {
		prev := strings.TrimLeft(rest[len(rest)-1], "-")
		if f := fs.Lookup(prev); f != nil && !isBoolFlag(f) && !strings.Contains(rest[len(rest)-1], "=") {
			return []string{filesDirective}
		}
	}
	if strings.HasPrefix(cur, "-") && fs != nil {
		var out []string
		dash := "-"
		if strings.HasPrefix(cur, "--") {
			dash = "--"
		}
		fs.VisitAll(func(f *flag.Flag) { out = append(out, dash+f.Name) })
		return out
	}
	switch kind {
	case "command":
		var out []string
		for _, c := range commands {
			out = append(out, c.name)
		}
		return out
	case "shell":
		return shells
	case "path":
		return []string{filesDirective}
	case "action":
		if positionals(fs, rest) == 0 {
			return serviceActions
		}
	case "policy":
		return a.policyNames(fs)
	}
	return nil
}

// flagSetOf returns the flag set the command name defines, learnt by
// running it with -h while nothing is printed.
func (a *app) flagSetOf(name string, rest []string) *flag.FlagSet {
	c, ok := lookupCommand(name)
	if !ok {
		return nil
	}
	var fs *flag.FlagSet
	probe := &app{stdout: io.Discard, stderr: io.Discard, introspect: func(f *flag.FlagSet) { fs = f }}
	args := []string{"-h"}
	if name == "journal" {
		args = []string{"recover", "-h"}
	}
	if name == "service" {
		action := "status"
		for _, w := range rest {
			if slices.Contains(serviceActions, w) {
				action = w
			}
		}
		args = []string{action, "-h"}
	}
	c.run(probe, args)
	if fs != nil {
		words := slices.DeleteFunc(slices.Clone(rest), func(w string) bool { return name == "service" && slices.Contains(serviceActions, w) })
		_, _ = parse(fs, words)
	}
	return fs
}

// positionals counts the words of rest that are not flags or flag values.
func positionals(fs *flag.FlagSet, rest []string) int {
	n := 0
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if !strings.HasPrefix(w, "-") {
			n++
			continue
		}
		if fs == nil || strings.Contains(w, "=") {
			continue
		}
		if f := fs.Lookup(strings.TrimLeft(w, "-")); f != nil && !isBoolFlag(f) {
			i++
		}
	}
	return n
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// policyNames loads the configuration named on the command line (or the
// default) quietly and lists its policies; it prints nothing on errors.
func (a *app) policyNames(fs *flag.FlagSet) []string {
	path := defaultConfig()
	if fs != nil {
		if f := fs.Lookup("config"); f != nil {
			path = f.Value.String()
		}
	}
	cfg, _ := policies.NewLoader().Load(path)
	if cfg == nil {
		return nil
	}
	defer cfg.Connections.Close()
	var out []string
	for _, p := range cfg.Policies {
		out = append(out, p.Name)
	}
	return out
}
