package awsemu

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

type secret struct {
	name, arn, description, kmsKeyID string
	created, changed                 time.Time
	versions                         []*version
}

type version struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

// smRequest holds the parameters of every Secrets Manager action handled.
type smRequest struct {
	Name                string
	SecretID            string `json:"SecretId"`
	ClientRequestToken  string
	Description         string
	KmsKeyID            string `json:"KmsKeyId"`
	SecretString        *string
	SecretBinary        []byte
	VersionStages       []string
	VersionID           string `json:"VersionId"`
	VersionStage        string
	MoveToVersionID     string `json:"MoveToVersionId"`
	RemoveFromVersionID string `json:"RemoveFromVersionId"`
	IncludeDeprecated   bool
}

// smActions are the Secrets Manager operations, by X-Amz-Target action.
var smActions = map[string]func(*Server, *call, *smRequest) (any, *apiError){
	"CreateSecret":             (*Server).smCreateSecret,
	"PutSecretValue":           (*Server).smPutSecretValue,
	"UpdateSecretVersionStage": (*Server).smUpdateSecretVersionStage,
	"GetSecretValue":           (*Server).smGetSecretValue,
	"DescribeSecret":           (*Server).smDescribeSecret,
	"ListSecretVersionIds":     (*Server).smListSecretVersionIds,
}

// epoch is a timestamp in AWS JSON: seconds since the epoch, with a fraction.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(e).UnixMilli())/1000, 'f', 3, 64)), nil
}

// writeJSON writes an AWS JSON 1.1 response; an error is HTTP 4xx/5xx with
// {"__type": code, "Message": text} (Secrets Manager API Reference, Common Errors).
func writeJSON(w http.ResponseWriter, c *call, result any, aerr *apiError) {
	status, body := http.StatusOK, result
	if aerr != nil {
		status, body = aerr.status, map[string]string{"__type": aerr.code, "Message": aerr.msg}
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func errSecretNotFound() *apiError {
	// Secrets Manager API Reference, GetSecretValue etc.: ResourceNotFoundException.
	return errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

// findSecret resolves SecretId, a name or an ARN.
func (s *Server) findSecret(id string) (*secret, *apiError) {
	if id == "" {
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
	}
	sec := s.secrets[id]
	for _, cand := range s.secrets {
		if cand.arn == id {
			sec = cand
		}
	}
	if sec == nil {
		return nil, errSecretNotFound()
	}
	return sec, nil
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (sec *secret) withStage(stage string) *version {
	for _, v := range sec.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

// attach moves stage to v. Secrets Manager API Reference,
// UpdateSecretVersionStage / PutSecretValue: a staging label is attached to
// only one version at a time, so it leaves the version that had it; moving
// AWSCURRENT moves AWSPREVIOUS to the version AWSCURRENT was removed from.
func (sec *secret) attach(stage string, v *version) {
	old := sec.withStage(stage)
	if old == v {
		return
	}
	if old != nil {
		old.removeStage(stage)
	}
	v.stages = append(v.stages, stage)
	if stage == stageCurrent && old != nil {
		sec.attach(stagePrevious, old)
	}
}

func (v *version) removeStage(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
}

func (v *version) sameValue(req *smRequest) bool {
	return (v.str == nil) == (req.SecretString == nil) && (v.str == nil || *v.str == *req.SecretString) &&
		bytes.Equal(v.bin, req.SecretBinary)
}

// checkValue: Secrets Manager API Reference, PutSecretValue: SecretString
// and SecretBinary are exclusive, and one of them is required.
func checkValue(req *smRequest) *apiError {
	if req.SecretString != nil && req.SecretBinary != nil {
		return errorf(400, "InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if req.SecretString == nil && req.SecretBinary == nil {
		return errorf(400, "InvalidRequestException", "You must provide either SecretString or SecretBinary.")
	}
	return nil
}

// token applies the ClientRequestToken rules. Secrets Manager API Reference,
// CreateSecret/PutSecretValue: 32-64 characters, the new version's id; the
// SDKs generate a UUID when it is omitted.
func token(req *smRequest) (string, *apiError) {
	t := req.ClientRequestToken
	if t == "" {
		return newUUID(), nil
	}
	if len(t) < 32 || len(t) > 64 {
		return "", errorf(400, "ValidationException", "1 validation error detected: Value '%s' at 'clientRequestToken' failed to satisfy constraint: Member must have length between 32 and 64", t)
	}
	return t, nil
}

// Secrets Manager API Reference, CreateSecret: ResourceExistsException when
// the name exists; a value given becomes the first version, labelled
// AWSCURRENT. The ARN ends in "-" and 6 random characters.
func (s *Server) smCreateSecret(c *call, req *smRequest) (any, *apiError) {
	if req.Name == "" {
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	tok, err := token(req)
	if err != nil {
		return nil, err
	}
	if s.secrets[req.Name] != nil {
		return nil, errorf(400, "ResourceExistsException", "The operation failed because the secret %s already exists.", req.Name)
	}
	hasValue := req.SecretString != nil || req.SecretBinary != nil
	if err := checkValue(req); hasValue && err != nil {
		return nil, err
	}
	sec := &secret{name: req.Name, description: req.Description, kmsKeyID: req.KmsKeyID,
		created: c.now, changed: c.now,
		arn: "arn:aws:secretsmanager:" + s.opts.Region + ":" + s.opts.AccountID + ":secret:" + req.Name + "-" + randString(alnum, 6)}
	s.secrets[req.Name] = sec
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	if hasValue {
		v := &version{id: tok, str: req.SecretString, bin: req.SecretBinary, created: c.now}
		sec.versions = append(sec.versions, v)
		sec.attach(stageCurrent, v)
		out["VersionId"] = v.id
	}
	return out, nil
}

// Secrets Manager API Reference, PutSecretValue.
func (s *Server) smPutSecretValue(c *call, req *smRequest) (any, *apiError) {
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	if err := checkValue(req); err != nil {
		return nil, err
	}
	tok, err := token(req)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": tok}
	// ClientRequestToken: "If a version with this value already exists and
	// that version's SecretString and SecretBinary values are the same as
	// those in the request, then the request is ignored. [...] If [they] are
	// different from those in the request, then the request fails because you
	// can't modify a secret version" (ResourceExistsException).
	if v := sec.version(tok); v != nil {
		if !v.sameValue(req) {
			return nil, errorf(400, "ResourceExistsException", "You can't modify an existing version, you can only create new versions.")
		}
		out["VersionStages"] = slices.Clone(v.stages)
		return out, nil
	}
	// VersionStages: "If you don't include VersionStages, then Secrets Manager
	// automatically moves the staging label AWSCURRENT to this version"; "If
	// this operation creates the first version for the secret, then Secrets
	// Manager automatically attaches the staging label AWSCURRENT".
	stages := req.VersionStages
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	if sec.withStage(stageCurrent) == nil && !slices.Contains(stages, stageCurrent) {
		stages = append(slices.Clone(stages), stageCurrent)
	}
	v := &version{id: tok, str: req.SecretString, bin: req.SecretBinary, created: c.now}
	sec.versions = append(sec.versions, v)
	for _, st := range stages {
		sec.attach(st, v)
	}
	sec.changed = c.now
	out["VersionStages"] = slices.Clone(v.stages)
	return out, nil
}

// Secrets Manager API Reference, UpdateSecretVersionStage.
func (s *Server) smUpdateSecretVersionStage(c *call, req *smRequest) (any, *apiError) {
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	if req.VersionStage == "" {
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value null at 'versionStage' failed to satisfy constraint: Member must not be null")
	}
	if req.MoveToVersionID == "" && req.RemoveFromVersionID == "" {
		return nil, errorf(400, "InvalidParameterException", "You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	holder := sec.withStage(req.VersionStage)
	// RemoveFromVersionId: "If the label is attached and you either do not
	// specify this parameter, or the version ID does not match, then the
	// operation fails" (InvalidParameterException).
	if req.RemoveFromVersionID != "" && (holder == nil || holder.id != req.RemoveFromVersionID) {
		return nil, errorf(400, "InvalidParameterException", "The staging label %s is not attached to version %s.", req.VersionStage, req.RemoveFromVersionID)
	}
	if req.MoveToVersionID != "" {
		target := sec.version(req.MoveToVersionID)
		if target == nil {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", req.MoveToVersionID)
		}
		if holder != nil && holder != target && req.RemoveFromVersionID == "" {
			return nil, errorf(400, "InvalidParameterException", "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", req.VersionStage, holder.id)
		}
		sec.attach(req.VersionStage, target)
	} else {
		// Removing a label without moving it is allowed, except AWSCURRENT.
		// The API reference does not spell that case out; AWS refuses it
		// (the Terraform/Pulumi aws provider documents the refusal), and so
		// does the emulator.
		if req.VersionStage == stageCurrent {
			return nil, errorf(400, "InvalidParameterException", "You can't remove the staging label AWSCURRENT from a version without moving it to another version (MoveToVersionId).")
		}
		holder.removeStage(req.VersionStage)
	}
	sec.changed = c.now
	return map[string]any{"ARN": sec.arn, "Name": sec.name}, nil
}

// Secrets Manager API Reference, GetSecretValue: by VersionId or
// VersionStage, AWSCURRENT by default; ResourceNotFoundException when no
// version matches.
func (s *Server) smGetSecretValue(c *call, req *smRequest) (any, *apiError) {
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	var v *version
	switch {
	case req.VersionID != "":
		if v = sec.version(req.VersionID); v == nil {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", req.VersionID)
		}
		if req.VersionStage != "" && !slices.Contains(v.stages, req.VersionStage) {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s and staging label: %s", req.VersionID, req.VersionStage)
		}
	default:
		stage := req.VersionStage
		if stage == "" {
			stage = stageCurrent
		}
		if v = sec.withStage(stage); v == nil {
			return nil, errorf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id,
		"VersionStages": slices.Clone(v.stages), "CreatedDate": epoch(v.created)}
	if v.str != nil {
		out["SecretString"] = *v.str
	}
	if v.bin != nil {
		out["SecretBinary"] = v.bin
	}
	return out, nil
}

// Secrets Manager API Reference, DescribeSecret: VersionIdsToStages lists
// the versions that have staging labels; KmsKeyId only when one was given.
func (s *Server) smDescribeSecret(c *call, req *smRequest) (any, *apiError) {
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	stages := map[string][]string{}
	for _, v := range sec.versions {
		if len(v.stages) > 0 {
			stages[v.id] = slices.Clone(v.stages)
		}
	}
	out := map[string]any{"ARN": sec.arn, "Name": sec.name, "CreatedDate": epoch(sec.created),
		"LastChangedDate": epoch(sec.changed), "VersionIdsToStages": stages}
	if sec.description != "" {
		out["Description"] = sec.description
	}
	if sec.kmsKeyID != "" {
		out["KmsKeyId"] = sec.kmsKeyID
	}
	return out, nil
}

// Secrets Manager API Reference, ListSecretVersionIds: versions without a
// staging label are deprecated and listed only with IncludeDeprecated.
func (s *Server) smListSecretVersionIds(c *call, req *smRequest) (any, *apiError) {
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	versions := []map[string]any{}
	for _, v := range sec.versions {
		if len(v.stages) == 0 && !req.IncludeDeprecated {
			continue
		}
		versions = append(versions, map[string]any{"VersionId": v.id, "VersionStages": slices.Clone(v.stages), "CreatedDate": epoch(v.created)})
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "Versions": versions}, nil
}
