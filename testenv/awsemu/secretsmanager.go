package awsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	deleteAt                         time.Time // scheduled deletion; zero when not scheduled
	deletedAt                        time.Time // when DeleteSecret scheduled it
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

	RecoveryWindowInDays       *int64
	ForceDeleteWithoutRecovery bool
}

// smActions are the Secrets Manager operations, by X-Amz-Target action.
var smActions = map[string]func(*Server, *call, *smRequest) (any, *apiError){
	"CreateSecret":             (*Server).smCreateSecret,
	"PutSecretValue":           (*Server).smPutSecretValue,
	"UpdateSecretVersionStage": (*Server).smUpdateSecretVersionStage,
	"GetSecretValue":           (*Server).smGetSecretValue,
	"DescribeSecret":           (*Server).smDescribeSecret,
	"ListSecretVersionIds":     (*Server).smListSecretVersionIds,
	"DeleteSecret":             (*Server).smDeleteSecret,
	"RestoreSecret":            (*Server).smRestoreSecret,
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
	// SecretId: "Length Constraints: Minimum length of 1. Maximum length of 2048."
	if len(id) > maxSecretID {
		return nil, errValidation(fmt.Sprintf("Value at 'secretId' failed to satisfy constraint: Member must have length less than or equal to %d", maxSecretID))
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

// purgeDeleted removes the secrets whose recovery window has passed.
// DeleteSecret: "At the end of the recovery window, Secrets Manager deletes
// the secret permanently."
func (s *Server) purgeDeleted(now time.Time) {
	for name, sec := range s.secrets {
		if !sec.deleteAt.IsZero() && !now.Before(sec.deleteAt) {
			delete(s.secrets, name)
		}
	}
}

// findLive resolves SecretId to a secret that is not scheduled for
// deletion. Secrets Manager API Reference, DeleteSecret: "you can't use the
// secret ... A secret scheduled for deletion cannot be accessed"; GetSecretValue,
// PutSecretValue and UpdateSecretVersionStage list InvalidRequestException
// for "The secret is scheduled for deletion."
func (s *Server) findLive(id string) (*secret, *apiError) {
	sec, err := s.findSecret(id)
	if err != nil {
		return nil, err
	}
	if !sec.deleteAt.IsZero() {
		return nil, errorf(400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
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

// Input limits, Secrets Manager API Reference (CreateSecret, PutSecretValue,
// UpdateSecretVersionStage, "Length Constraints" and "Array Members" of each
// parameter) and Secrets Manager User Guide, "AWS Secrets Manager quotas"
// (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html).
const (
	maxSecretValue    = 65536 // SecretString, SecretBinary: "Maximum length of 65536"; quota "Secret value size: 65,536 bytes"
	maxSecretName     = 512   // Name: "Maximum length of 512"
	maxSecretID       = 2048  // SecretId: "Maximum length of 2048"
	maxDescription    = 2048  // Description: "Maximum length of 2048"
	maxStagesPerCall  = 20    // VersionStages: "Maximum number of 20 items"
	maxStageLength    = 256   // VersionStage: "Maximum length of 256"
	maxStagesPerSec   = 20    // quota "Staging labels attached across all versions of a secret: 20"
	maxVersions       = 100   // quota "Versions per secret: 100"
	versionMinAgeKept = 24 * time.Hour
)

// errValidation is the AWS JSON protocol's answer to a parameter outside
// its modelled constraints (Common Errors, ValidationException, HTTP 400).
func errValidation(detail string) *apiError {
	return errorf(400, "ValidationException", "1 validation error detected: %s", detail)
}

// checkName: CreateSecret, Name: "The secret name can contain ASCII
// letters, numbers, and the following characters: /_+=.@-", 1 to 512
// characters.
func checkName(name string) *apiError {
	if name == "" {
		return errValidation("Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	if len(name) > maxSecretName {
		return errValidation(fmt.Sprintf("Value at 'name' failed to satisfy constraint: Member must have length less than or equal to %d", maxSecretName))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+=.@-", r)) {
			return errorf(400, "ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
		}
	}
	return nil
}

// checkValue: Secrets Manager API Reference, PutSecretValue: SecretString
// and SecretBinary are exclusive, one of them is required (an empty one
// counts as none), and each holds at most 65,536 bytes.
func checkValue(req *smRequest) *apiError {
	if req.SecretString != nil && req.SecretBinary != nil {
		return errorf(400, "InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	if (req.SecretString == nil || *req.SecretString == "") && len(req.SecretBinary) == 0 {
		return errorf(400, "InvalidRequestException", "You must provide either SecretString or SecretBinary.")
	}
	if req.SecretString != nil && len(*req.SecretString) > maxSecretValue {
		return errValidation(fmt.Sprintf("Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to %d", maxSecretValue))
	}
	if len(req.SecretBinary) > maxSecretValue {
		return errValidation(fmt.Sprintf("Value at 'secretBinary' failed to satisfy constraint: Member must have length less than or equal to %d", maxSecretValue))
	}
	return nil
}

// checkStages: VersionStages has 1 to 20 members of 1 to 256 characters.
func checkStages(stages []string) *apiError {
	if len(stages) > maxStagesPerCall {
		return errValidation(fmt.Sprintf("Value at 'versionStages' failed to satisfy constraint: Member must have length less than or equal to %d", maxStagesPerCall))
	}
	for _, st := range stages {
		if st == "" || len(st) > maxStageLength {
			return errValidation(fmt.Sprintf("Value at 'versionStages' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to %d, Member must have length greater than or equal to 1]", maxStageLength))
		}
	}
	return nil
}

// labelCount is the number of distinct staging labels on the secret's
// versions after adding extra.
func (sec *secret) labelCount(extra []string) int {
	seen := map[string]bool{}
	for _, v := range sec.versions {
		for _, st := range v.stages {
			seen[st] = true
		}
	}
	for _, st := range extra {
		seen[st] = true
	}
	return len(seen)
}

// makeRoom applies the quota "Versions per secret: 100" before a version
// is added. User Guide, "AWS Secrets Manager quotas": "Secrets Manager
// removes unlabeled versions when there are more than 100, but it does not
// remove versions created less than 24 hours ago"; past that, the new
// version exceeds the quota (LimitExceededException).
func (sec *secret) makeRoom(now time.Time) *apiError {
	for len(sec.versions) >= maxVersions {
		i := slices.IndexFunc(sec.versions, func(v *version) bool {
			return len(v.stages) == 0 && now.Sub(v.created) >= versionMinAgeKept
		})
		if i < 0 {
			return errorf(400, "LimitExceededException", "You have exceeded the maximum number of versions (%d) for secret %s. Versions without staging labels are removed only once they are 24 hours old.", maxVersions, sec.name)
		}
		sec.versions = slices.Delete(sec.versions, i, i+1)
	}
	return nil
}

// putList sets out[key] to a copy of list unless it is empty: AWS JSON
// responses omit empty lists and maps (awscli's own example of
// list-secret-version-ids shows a version without "VersionStages"), so
// the SDKs yield nil.
func putList[T any](out map[string]any, key string, list []T) {
	if len(list) > 0 {
		out[key] = slices.Clone(list)
	}
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
	if err := checkName(req.Name); err != nil {
		return nil, err
	}
	if len(req.Description) > maxDescription {
		return nil, errValidation(fmt.Sprintf("Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d", maxDescription))
	}
	tok, err := token(req)
	if err != nil {
		return nil, err
	}
	s.purgeDeleted(c.now)
	if old := s.secrets[req.Name]; old != nil {
		if !old.deleteAt.IsZero() {
			// CreateSecret, InvalidRequestException: "You tried to create a
			// secret with a name that is already scheduled for deletion."
			return nil, errorf(400, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
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
	s.purgeDeleted(c.now)
	sec, err := s.findLive(req.SecretID)
	if err != nil {
		return nil, err
	}
	if err := checkValue(req); err != nil {
		return nil, err
	}
	if err := checkStages(req.VersionStages); err != nil {
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
		putList(out, "VersionStages", v.stages)
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
	if sec.labelCount(stages) > maxStagesPerSec {
		return nil, errorf(400, "LimitExceededException", "You have exceeded the maximum number of staging labels (%d) attached across all versions of secret %s.", maxStagesPerSec, sec.name)
	}
	if err := sec.makeRoom(c.now); err != nil {
		return nil, err
	}
	v := &version{id: tok, str: req.SecretString, bin: req.SecretBinary, created: c.now}
	sec.versions = append(sec.versions, v)
	for _, st := range stages {
		sec.attach(st, v)
	}
	sec.changed = c.now
	putList(out, "VersionStages", v.stages)
	return out, nil
}

// Secrets Manager API Reference, UpdateSecretVersionStage.
func (s *Server) smUpdateSecretVersionStage(c *call, req *smRequest) (any, *apiError) {
	s.purgeDeleted(c.now)
	sec, err := s.findLive(req.SecretID)
	if err != nil {
		return nil, err
	}
	if req.VersionStage == "" {
		return nil, errorf(400, "ValidationException", "1 validation error detected: Value null at 'versionStage' failed to satisfy constraint: Member must not be null")
	}
	if err := checkStages([]string{req.VersionStage}); err != nil {
		return nil, err
	}
	if req.MoveToVersionID != "" && sec.labelCount([]string{req.VersionStage}) > maxStagesPerSec {
		return nil, errorf(400, "LimitExceededException", "You have exceeded the maximum number of staging labels (%d) attached across all versions of secret %s.", maxStagesPerSec, sec.name)
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
	s.purgeDeleted(c.now)
	sec, err := s.findLive(req.SecretID)
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
	out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "CreatedDate": epoch(v.created)}
	putList(out, "VersionStages", v.stages)
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
	s.purgeDeleted(c.now)
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
		"LastChangedDate": epoch(sec.changed)}
	if len(stages) > 0 {
		out["VersionIdsToStages"] = stages
	}
	if !sec.deleteAt.IsZero() {
		// DescribeSecret, DeletedDate: "If a secret is scheduled for
		// deletion, the date [...] when the secret was deleted."
		out["DeletedDate"] = epoch(sec.deletedAt)
	}
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
	s.purgeDeleted(c.now)
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	var versions []map[string]any
	for _, v := range sec.versions {
		if len(v.stages) == 0 && !req.IncludeDeprecated {
			continue
		}
		m := map[string]any{"VersionId": v.id, "CreatedDate": epoch(v.created)}
		putList(m, "VersionStages", v.stages)
		versions = append(versions, m)
	}
	out := map[string]any{"ARN": sec.arn, "Name": sec.name}
	putList(out, "Versions", versions)
	return out, nil
}

// Secrets Manager API Reference, DeleteSecret: schedules the deletion after
// RecoveryWindowInDays (7 to 30, default 30), or deletes at once with
// ForceDeleteWithoutRecovery (not both: InvalidParameterException). The
// secret can be restored until then; meanwhile it can only be described,
// listed and restored (see findLive). Deleting again is accepted and keeps
// the first date.
func (s *Server) smDeleteSecret(c *call, req *smRequest) (any, *apiError) {
	s.purgeDeleted(c.now)
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	if req.ForceDeleteWithoutRecovery && req.RecoveryWindowInDays != nil {
		return nil, errorf(400, "InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if req.RecoveryWindowInDays != nil {
		days = *req.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, errorf(400, "InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	if sec.deleteAt.IsZero() {
		sec.deletedAt = c.now
		sec.deleteAt = c.now.Add(time.Duration(days) * 24 * time.Hour)
	}
	if req.ForceDeleteWithoutRecovery {
		sec.deleteAt = c.now
		delete(s.secrets, sec.name)
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "DeletionDate": epoch(sec.deleteAt)}, nil
}

// Secrets Manager API Reference, RestoreSecret: cancels a scheduled
// deletion.
func (s *Server) smRestoreSecret(c *call, req *smRequest) (any, *apiError) {
	s.purgeDeleted(c.now)
	sec, err := s.findSecret(req.SecretID)
	if err != nil {
		return nil, err
	}
	sec.deleteAt, sec.deletedAt = time.Time{}, time.Time{}
	return map[string]any{"ARN": sec.arn, "Name": sec.name}, nil
}
