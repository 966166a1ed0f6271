package file

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/hashicorp/hcl/v2"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/sinks"
)

type config struct {
	Path          string    `hcl:"path"`
	Format        string    `hcl:"format"`
	Newline       *bool     `hcl:"newline,optional"`
	Template      *string   `hcl:"template,optional"`
	Mode          *string   `hcl:"mode,optional"`
	Owner         *string   `hcl:"owner,optional"`
	Group         *string   `hcl:"group,optional"`
	PathRange     hcl.Range `hcl:"path,attr_range"`
	FormatRange   hcl.Range `hcl:"format,attr_range"`
	NewlineRange  hcl.Range `hcl:"newline,attr_range"`
	TemplateRange hcl.Range `hcl:"template,attr_range"`
	ModeRange     hcl.Range `hcl:"mode,attr_range"`
	OwnerRange    hcl.Range `hcl:"owner,attr_range"`
	GroupRange    hcl.Range `hcl:"group,attr_range"`
}

// Formats are the accepted values of the format option.
var Formats = []string{"raw", "json", "env", "template"}

// DefaultMode is the mode of a written file when mode is unset.
const DefaultMode = 0o600

// New decodes a file sink block.
func New(env *plugin.Env, body hcl.Body) (sinks.Sink, hcl.Diagnostics) {
	s, diags := newSink(env, body)
	if s == nil {
		return nil, diags
	}
	return s, diags
}

func newSink(env *plugin.Env, body hcl.Body) (*Sink, hcl.Diagnostics) {
	var cfg config
	diags := env.Decode(body, &cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	at := env.Subject
	add := func(sev hcl.DiagnosticSeverity, r hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: at(r)})
	}

	s := &Sink{format: cfg.Format, mode: DefaultMode, uid: -1, gid: -1}
	switch {
	case cfg.Path == "":
		add(hcl.DiagError, cfg.PathRange, "Empty path", "path names the file to write, such as \"/etc/myapp/api-key\".")
	case strings.HasSuffix(cfg.Path, "/") || strings.HasSuffix(cfg.Path, string(filepath.Separator)):
		add(hcl.DiagError, cfg.PathRange, "Path is a directory", "path must name a file, not a directory.")
	default:
		p := env.Path(cfg.Path)
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		s.path = filepath.Clean(p)
		s.dir, s.name = filepath.Split(s.path)
		s.dir = filepath.Clean(s.dir)
	}

	switch cfg.Format {
	case "raw", "json", "env":
		if cfg.Template != nil {
			add(hcl.DiagError, cfg.TemplateRange, "Template needs format = \"template\"", "template is only used with format = \"template\".")
		}
	case "template":
		if cfg.Template == nil {
			add(hcl.DiagError, cfg.FormatRange, "Missing template", "format = \"template\" needs a template attribute: Go text/template text with the key's fields as {{ .Fields.name }} and its id as {{ .KeyID }}.")
			break
		}
		t, err := template.New(filepath.Base(s.path)).Option("missingkey=error").Parse(*cfg.Template)
		if err != nil {
			add(hcl.DiagError, cfg.TemplateRange, "Invalid template", fmt.Sprintf("The template does not parse: %s.", err))
			break
		}
		s.tmpl = t
	default:
		add(hcl.DiagError, cfg.FormatRange, "Invalid format", fmt.Sprintf("Unknown format %q: use \"raw\" (the single field's value), \"json\" (an object of the fields), \"env\" (NAME='value' lines) or \"template\".", cfg.Format))
	}
	if cfg.Newline != nil {
		if cfg.Format != "raw" {
			add(hcl.DiagError, cfg.NewlineRange, "Newline needs format = \"raw\"", "newline only applies to the raw format; json and env files always end with a newline, and a template writes exactly what it renders.")
		}
		s.newline = *cfg.Newline
	}

	if cfg.Mode != nil {
		m, err := strconv.ParseUint(*cfg.Mode, 8, 32)
		switch {
		case err != nil || m > 0o777:
			add(hcl.DiagError, cfg.ModeRange, "Invalid mode", fmt.Sprintf("%q is not a file mode: write octal permission bits as a string, such as \"0600\" or \"0640\".", *cfg.Mode))
		case m&0o022 != 0:
			add(hcl.DiagError, cfg.ModeRange, "Mode allows others to write the secret", fmt.Sprintf("Mode %04o lets the group or other users write the file, so anyone could swap the key dependents use. Use \"0600\", or \"0640\" with a group.", m))
		case m&0o400 == 0:
			add(hcl.DiagError, cfg.ModeRange, "Mode hides the file from its owner", fmt.Sprintf("Mode %04o does not let the owner read the file; rekey reads it back after writing. Include 0400.", m))
		default:
			switch {
			case m&0o004 != 0:
				add(hcl.DiagWarning, cfg.ModeRange, "Mode lets every user read the secret", fmt.Sprintf("Mode %04o lets all users of the machine read the file. Use \"0600\" with owner set to the dependent's user, or \"0640\" with group set to a group of readers.", m))
			case m&0o040 != 0 && cfg.Group == nil:
				add(hcl.DiagWarning, cfg.ModeRange, "Mode lets a group read the secret", fmt.Sprintf("Mode %04o lets the file's group read it, but group is not set, so that group is whatever the existing file or rekey's user has. Set group to the readers' group, or use \"0600\".", m))
			}
			s.mode = uint32(m)
		}
	}
	if cfg.Owner != nil {
		s.owner = *cfg.Owner
		diags = append(diags, checkAccount("owner", s.owner, at(cfg.OwnerRange))...)
	}
	if cfg.Group != nil {
		s.group = *cfg.Group
		diags = append(diags, checkAccount("group", s.group, at(cfg.GroupRange))...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

// checkAccount validates an owner or group option. Names are resolved at
// each write, not here, so that a policy validates on a machine (CI, a
// laptop) that lacks the account.
func checkAccount(attr, name string, r *hcl.Range) hcl.Diagnostics {
	if name == "" {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty " + attr, Detail: fmt.Sprintf("%s is a name or a numeric id; leave it out to keep the existing file's %s.", attr, attr), Subject: r}}
	}
	if !ownershipSupported {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported " + attr, Detail: fmt.Sprintf("%s is not supported on this operating system; set permissions on the directory instead.", attr), Subject: r}}
	}
	return nil
}
