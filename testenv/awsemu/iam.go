package awsemu

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	iamVersion = "2010-05-08"
	stsVersion = "2011-06-15"
	iamXMLNS   = "https://iam.amazonaws.com/doc/2010-05-08/"
	stsXMLNS   = "https://sts.amazonaws.com/doc/2011-06-15/"
)

type queryHandler func(*Server, *call) (any, *apiError)

// queryActions are the Query protocol operations, by credential scope service.
var queryActions = map[string]map[string]queryHandler{
	"iam": {
		"CreateUser":           (*Server).iamCreateUser,
		"GetUser":              (*Server).iamGetUser,
		"CreateAccessKey":      (*Server).iamCreateAccessKey,
		"UpdateAccessKey":      (*Server).iamUpdateAccessKey,
		"DeleteAccessKey":      (*Server).iamDeleteAccessKey,
		"ListAccessKeys":       (*Server).iamListAccessKeys,
		"GetAccessKeyLastUsed": (*Server).iamGetAccessKeyLastUsed,
	},
	"sts": {
		"GetCallerIdentity": (*Server).stsGetCallerIdentity,
	},
}

// writeQuery writes a Query protocol response: on success
// <ActionResponse xmlns=NS><ActionResult>...</ActionResult>
// <ResponseMetadata><RequestId/></ResponseMetadata></ActionResponse>; on
// failure <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>
// </ErrorResponse> (IAM API Reference, "Making Query requests"; Common Errors).
func writeQuery(w http.ResponseWriter, c *call, result any, aerr *apiError) {
	ns := iamXMLNS
	if c.service == "sts" {
		ns = stsXMLNS
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	status := http.StatusOK
	if aerr != nil {
		status = aerr.status
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		_ = xml.NewEncoder(&buf).Encode(struct {
			XMLName xml.Name `xml:"ErrorResponse"`
			XMLNS   string   `xml:"xmlns,attr"`
			Error   struct {
				Type, Code, Message string
			}
			RequestID string `xml:"RequestId"`
		}{XMLNS: ns, Error: struct{ Type, Code, Message string }{kind, aerr.code, aerr.msg}, RequestID: c.reqID})
	} else {
		fmt.Fprintf(&buf, `<%sResponse xmlns="%s">`, c.action, ns)
		if result != nil {
			enc := xml.NewEncoder(&buf)
			_ = enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: c.action + "Result"}})
			_ = enc.Flush()
		}
		fmt.Fprintf(&buf, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, c.reqID, c.action)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// isoTime is the ISO 8601 form of IAM's dateType.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

type xmlUser struct {
	Path       string
	UserName   string
	UserID     string `xml:"UserId"`
	Arn        string
	CreateDate string
}

type xmlAccessKey struct {
	UserName        string
	AccessKeyID     string `xml:"AccessKeyId"`
	Status          string
	SecretAccessKey string `xml:",omitempty"`
	CreateDate      string
}

func (u *user) xml() xmlUser {
	return xmlUser{Path: "/", UserName: u.name, UserID: u.id, Arn: u.arn, CreateDate: isoTime(u.created)}
}

func (k *accessKey) xml() xmlAccessKey {
	return xmlAccessKey{UserName: k.User, AccessKeyID: k.ID, Status: k.Status, CreateDate: isoTime(k.Created)}
}

func errNoSuchUser(name string) *apiError {
	// IAM API Reference, CreateAccessKey/ListAccessKeys/GetUser...: NoSuchEntity, HTTP 404.
	return errorf(404, "NoSuchEntity", "The user with name %s cannot be found.", name)
}

func errNoSuchKey(id string) *apiError {
	// IAM API Reference, UpdateAccessKey/DeleteAccessKey: NoSuchEntity, HTTP 404.
	return errorf(404, "NoSuchEntity", "The Access Key with id %s cannot be found.", id)
}

func checkKeyQuota(u *user) *apiError {
	// IAM API Reference, CreateAccessKey: LimitExceeded (HTTP 409) when the
	// user already has 2 keys, Active and Inactive alike (IAM quotas:
	// "Access keys assigned to an IAM user: 2").
	if len(u.keys) >= 2 {
		return errorf(409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
	}
	return nil
}

// authorize is the emulator's whole policy: admin may do everything, any
// other user only IAM actions on itself. IAM User Guide, "Troubleshoot access
// denied": AccessDenied, HTTP 403, naming the principal, action and resource.
func (s *Server) authorize(c *call, target string) *apiError {
	if c.user.name == adminUser || target == c.user.name {
		return nil
	}
	return s.accessDenied(c, target)
}

func (s *Server) accessDenied(c *call, target string) *apiError {
	return errorf(403, "AccessDenied", "User: %s is not authorized to perform: iam:%s on resource: %s because no identity-based policy allows the iam:%s action",
		c.user.arn, c.action, s.userARN(target), c.action)
}

func (s *Server) userARN(name string) string {
	return "arn:aws:iam::" + s.opts.AccountID + ":user/" + name
}

// targetUser resolves the UserName parameter. IAM API Reference,
// CreateAccessKey/UpdateAccessKey/DeleteAccessKey/ListAccessKeys/GetUser:
// "If you do not specify a user name, IAM determines the user name implicitly
// based on the AWS access key ID used to sign the request."
func (s *Server) targetUser(c *call) (*user, *apiError) {
	name := c.form.Get("UserName")
	if name == "" {
		name = c.user.name
	}
	if err := s.authorize(c, name); err != nil {
		return nil, err // authorization is evaluated before the entity is looked up
	}
	u := s.users[name]
	if u == nil {
		return nil, errNoSuchUser(name)
	}
	return u, nil
}

// required reports a missing parameter. Common Errors, ValidationError
// (HTTP 400), in the words IAM uses for a null member.
func (c *call) required(names ...string) *apiError {
	for _, n := range names {
		if c.form.Get(n) == "" {
			return errorf(400, "ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
				strings.ToLower(n[:1])+n[1:])
		}
	}
	return nil
}

// IAM API Reference, CreateUser: EntityAlreadyExists (HTTP 409) when the name is taken.
func (s *Server) iamCreateUser(c *call) (any, *apiError) {
	if err := c.required("UserName"); err != nil {
		return nil, err
	}
	name := c.form.Get("UserName")
	if c.user.name != adminUser { // only admin creates users
		return nil, s.accessDenied(c, name)
	}
	if s.users[name] != nil {
		return nil, errorf(409, "EntityAlreadyExists", "User with name %s already exists.", name)
	}
	return struct{ User xmlUser }{s.createUser(name, c.now).xml()}, nil
}

// IAM API Reference, GetUser: returns the user, the caller when UserName is omitted.
func (s *Server) iamGetUser(c *call) (any, *apiError) {
	u, err := s.targetUser(c)
	if err != nil {
		return nil, err
	}
	return struct{ User xmlUser }{u.xml()}, nil
}

// IAM API Reference, CreateAccessKey: a new key is Active; its secret is
// returned only here. It authenticates only after the consistency delay
// (see change).
func (s *Server) iamCreateAccessKey(c *call) (any, *apiError) {
	u, err := s.targetUser(c)
	if err != nil {
		return nil, err
	}
	if err := checkKeyQuota(u); err != nil {
		return nil, err
	}
	k := s.newKey(u, c.now, true)
	x := k.xml()
	x.SecretAccessKey = k.secret
	return struct{ AccessKey xmlAccessKey }{x}, nil
}

// userKey finds one of u's current keys; a key of another user is NoSuchEntity.
func userKey(u *user, id string) (*accessKey, int) {
	for i, k := range u.keys {
		if k.ID == id {
			return k, i
		}
	}
	return nil, -1
}

// IAM API Reference, UpdateAccessKey: Status is Active or Inactive;
// NoSuchEntity when the user has no such key. The new status reaches
// authentication after the consistency delay (see change); ListAccessKeys
// shows it at once.
func (s *Server) iamUpdateAccessKey(c *call) (any, *apiError) {
	if err := c.required("AccessKeyId", "Status"); err != nil {
		return nil, err
	}
	status := c.form.Get("Status")
	if status != statusActive && status != statusInactive {
		return nil, errorf(400, "ValidationError", "1 validation error detected: Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", status)
	}
	u, err := s.targetUser(c)
	if err != nil {
		return nil, err
	}
	k, _ := userKey(u, c.form.Get("AccessKeyId"))
	if k == nil {
		return nil, errNoSuchKey(c.form.Get("AccessKeyId"))
	}
	if k.Status != status {
		st := authActive
		if status == statusInactive {
			st = authInactive
		}
		s.change(k, c.now, st, true)
	}
	k.Status = status
	return nil, nil
}

// IAM API Reference, DeleteAccessKey: NoSuchEntity when the user has no
// such key. The key leaves the user's list (and quota) at once but keeps
// authenticating until the consistency delay has passed (see change).
func (s *Server) iamDeleteAccessKey(c *call) (any, *apiError) {
	if err := c.required("AccessKeyId"); err != nil {
		return nil, err
	}
	u, err := s.targetUser(c)
	if err != nil {
		return nil, err
	}
	k, i := userKey(u, c.form.Get("AccessKeyId"))
	if k == nil {
		return nil, errNoSuchKey(c.form.Get("AccessKeyId"))
	}
	k.deleted = true
	s.change(k, c.now, authDeleted, true)
	u.keys = slices.Delete(u.keys, i, i+1)
	return nil, nil
}

// IAM API Reference, ListAccessKeys: AccessKeyMetadata (UserName,
// AccessKeyId, Status, CreateDate) of the user's keys, and IsTruncated.
func (s *Server) iamListAccessKeys(c *call) (any, *apiError) {
	u, err := s.targetUser(c)
	if err != nil {
		return nil, err
	}
	var r struct {
		UserName          string
		AccessKeyMetadata struct { // present even when empty, as on AWS
			Member []xmlAccessKey `xml:"member"`
		}
		IsTruncated bool
	}
	r.UserName = u.name
	for _, k := range u.keys {
		r.AccessKeyMetadata.Member = append(r.AccessKeyMetadata.Member, k.xml())
	}
	return r, nil
}

// IAM API Reference, GetAccessKeyLastUsed: UserName and AccessKeyLastUsed
// {LastUsedDate, ServiceName, Region}; a key never used has ServiceName and
// Region "N/A" and no LastUsedDate. The reference documents no error for an
// unknown key: the emulator answers NoSuchEntity, as UpdateAccessKey does.
// The date is late and rounded down to the minute (see reportedUse).
func (s *Server) iamGetAccessKeyLastUsed(c *call) (any, *apiError) {
	if err := c.required("AccessKeyId"); err != nil {
		return nil, err
	}
	id := c.form.Get("AccessKeyId")
	k := s.keys[id]
	owner := "*"
	if k != nil && !k.deleted {
		owner = k.User
	}
	if err := s.authorize(c, owner); err != nil {
		return nil, err
	}
	if owner == "*" {
		return nil, errNoSuchKey(id)
	}
	type lastUsed struct {
		LastUsedDate string `xml:",omitempty"`
		ServiceName  string
		Region       string
	}
	lu := lastUsed{ServiceName: "N/A", Region: "N/A"}
	if u, ok := k.reportedUse(c.now); ok {
		lu = lastUsed{isoTime(u.at), u.service, u.region}
	}
	return struct {
		UserName          string
		AccessKeyLastUsed lastUsed
	}{k.User, lu}, nil
}

// STS API Reference, GetCallerIdentity: Account, Arn and UserId of the
// caller; it needs no permission.
func (s *Server) stsGetCallerIdentity(c *call) (any, *apiError) {
	return struct {
		Arn     string
		UserID  string `xml:"UserId"`
		Account string
	}{c.user.arn, c.user.id, s.opts.AccountID}, nil
}
