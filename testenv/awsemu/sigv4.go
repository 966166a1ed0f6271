package awsemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Authentication failures, each with its code in the Query protocol (IAM,
// STS) and in AWS JSON (Secrets Manager), from the Common Errors pages.
type authFailure int

const (
	authMissing      authFailure = iota // MissingAuthenticationToken, 403
	authIncomplete                      // IncompleteSignature, 400
	authUnknownKey                      // InvalidClientTokenId, 403 / UnrecognizedClientException
	authBadSignature                    // SignatureDoesNotMatch, 403 / InvalidSignatureException
)

var authCodes = [...]struct {
	queryStatus, jsonStatus int
	query, json             string
}{
	authMissing:      {403, 403, "MissingAuthenticationToken", "MissingAuthenticationTokenException"},
	authIncomplete:   {400, 400, "IncompleteSignature", "IncompleteSignatureException"},
	authUnknownKey:   {403, 400, "InvalidClientTokenId", "UnrecognizedClientException"},
	authBadSignature: {403, 400, "SignatureDoesNotMatch", "InvalidSignatureException"},
}

func (c *call) authErr(kind authFailure, format string, args ...any) *apiError {
	codes := authCodes[kind]
	if c.json {
		return errorf(codes.jsonStatus, codes.json, format, args...)
	}
	return errorf(codes.queryStatus, codes.query, format, args...)
}

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	maxSkew      = 15 * time.Minute
	msgBadSig    = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgBadToken  = "The security token included in the request is invalid."
)

// credential is a parsed SigV4 Authorization header.
type credential struct {
	keyID, date, region, service string
	signedHeaders                []string
	signature                    string
}

// Signature Version 4, "Add the signature to the HTTP request": the header is
// "AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=HEX".
func parseAuthorization(h string) (credential, bool) {
	var cr credential
	rest, ok := strings.CutPrefix(h, sigAlgorithm+" ")
	if !ok {
		return cr, false
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return cr, false
			}
			cr.keyID, cr.date, cr.region, cr.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			cr.signedHeaders = strings.Split(v, ";")
		case "Signature":
			cr.signature = v
		}
	}
	return cr, cr.keyID != "" && len(cr.signedHeaders) > 0 && cr.signature != ""
}

// authenticate verifies the request's SigV4 signature and sets c.user
// and c.region; for the Query protocol the credential scope's service
// selects IAM or STS.
func (s *Server) authenticate(c *call, r *http.Request) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		// Common Errors, MissingAuthenticationToken: the request must contain
		// a valid access key ID (Authorization header) or X.509 certificate.
		return c.authErr(authMissing, "Request is missing Authentication Token")
	}
	cr, ok := parseAuthorization(auth)
	if !ok {
		// Common Errors, IncompleteSignature: the signature does not conform to AWS standards.
		return c.authErr(authIncomplete, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=%s", auth)
	}
	c.keyID = cr.keyID
	if !slices.Contains(cr.signedHeaders, "host") {
		// SigV4, "Create a canonical request": the host header must be signed.
		return c.authErr(authIncomplete, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}

	// SigV4, credential scope: it names the service (the endpoint's signing
	// name) and the region; IAM is global, so only the regional services
	// insist on their region.
	switch {
	case !c.json && (cr.service == "iam" || cr.service == "sts"):
		c.service = cr.service
	case c.json && cr.service == "secretsmanager":
		if cr.region != s.opts.Region {
			return c.authErr(authBadSignature, "Credential should be scoped to a valid region, not '%s'. ", cr.region)
		}
	default:
		return c.authErr(authBadSignature, "Credential should be scoped to correct service: '%s'. ", c.service)
	}
	c.region = cr.region

	// SigV4, "Elements of a signature": the timestamp is X-Amz-Date; the
	// scope's date must be its day, and AWS rejects requests signed more than
	// 15 minutes away from its clock.
	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		return c.authErr(authIncomplete, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=%s", auth)
	}
	if cr.date != amzDate[:8] {
		return c.authErr(authBadSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", cr.date, amzDate[:8], amzDate)
	}
	now := c.now.UTC()
	if signedAt.Before(now.Add(-maxSkew)) {
		return c.authErr(authBadSignature, "Signature expired: %s is now earlier than %s (%s - 15 min.)", amzDate, now.Add(-maxSkew).Format(amzDateFmt), now.Format(amzDateFmt))
	}
	if signedAt.After(now.Add(maxSkew)) {
		return c.authErr(authBadSignature, "Signature not yet current: %s is still later than %s (%s + 15 min.)", amzDate, now.Add(maxSkew).Format(amzDateFmt), now.Format(amzDateFmt))
	}

	// Common Errors, InvalidClientTokenId (UnrecognizedClientException in
	// AWS JSON): the access key ID does not exist in AWS records. IAM API
	// Reference, UpdateAccessKey/DeleteAccessKey: an Inactive or deleted key
	// cannot be used for API calls; IAM User Guide, "Changes I make are not
	// always immediately visible": a new key may not work at once.
	// IAM User Guide, "Changes that I make are not always immediately
	// visible": the state authentication sees lags behind (see change).
	k := s.keys[cr.keyID]
	if k == nil || k.authAt(c.now) != authActive {
		return c.authErr(authUnknownKey, msgBadToken)
	}

	payloadHash := sha256Hex(c.body)
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		// SigV4, "Create a canonical request": HashedPayload is the hash of the body.
		return c.authErr(authBadSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	canonical := canonicalRequest(r, cr.signedHeaders, payloadHash)
	scope := cr.date + "/" + cr.region + "/" + cr.service + "/aws4_request"
	stringToSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+k.secret), cr.date)
	for _, part := range []string{cr.region, cr.service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(want), []byte(cr.signature)) {
		// Common Errors, SignatureDoesNotMatch (InvalidSignatureException in AWS JSON).
		return c.authErr(authBadSignature, msgBadSig)
	}

	// IAM API Reference, GetAccessKeyLastUsed: AWS records the date, the
	// service and the region of the most recent request made with the key.
	c.user = s.users[k.User]
	s.recordUse(k, c.now, cr.service, cr.region)
	return nil
}

// canonicalRequest builds the SigV4 canonical request: method, URI, query,
// headers, signed header names, payload hash, one per line.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	// Every service but S3 URI-encodes the already-encoded path once more.
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	segs := strings.Split(path, "/")
	for i := range segs {
		segs[i] = uriEncode(segs[i])
	}
	b.WriteString(strings.Join(segs, "/") + "\n")

	q, _ := url.ParseQuery(r.URL.RawQuery)
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	slices.Sort(pairs) // sorts by encoded name, then value
	b.WriteString(strings.Join(pairs, "&") + "\n")

	for _, h := range signed {
		b.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHash)
	return b.String()
}

// headerValue is a header's canonical value: values trimmed, inner runs of
// spaces collapsed, several values joined by commas.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	default:
		vals = r.Header.Values(name)
		if name == "content-length" && len(vals) == 0 && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

// uriEncode is SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ as
// %XX in upper-case hex.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == '~' {
			b.WriteByte(ch)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{ch})))
		}
	}
	return b.String()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
