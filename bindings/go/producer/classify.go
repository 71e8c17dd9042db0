package producer

import (
	"errors"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

// requestKind is the library's error kind of a PutRecords call that failed as a whole.
// The error code (__type in the body, else the X-Amzn-ErrorType header, which the SDK
// reads) is more precise than the HTTP status; an unknown code falls back to the status
// (a 400 nobody can name is a client error, not a retry). No response at all is
// Transport: the records may have been stored, so sending them again can store them
// twice. Credentials the SDK could not retrieve or sign with (before anything was
// sent) are Credentials: the engine pauses while they are refreshed. Parameters the
// SDK refuses itself (nothing sent) are Validation: terminal.
func requestKind(err error) kb.ErrorKind {
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if k := kb.ErrorKindFromCode(ae.ErrorCode()); k != kb.UnknownError || status == 0 {
			return k
		}
	}
	if status != 0 {
		if k, isError := kb.ErrorKindFromHTTPStatus(status); isError {
			return k
		}
		return kb.BadResponse // a 2xx (or 1xx, 3xx) whose body is not a PutRecords result
	}
	if credentialsUnavailable(err) {
		return kb.Credentials
	}
	var ipe smithy.InvalidParamsError
	if errors.As(err, &ipe) {
		return kb.Validation // the SDK's own parameter check, before sending: terminal
	}
	return kb.Transport
}

// credentialsUnavailable: the SDK failed before sending because it could not get
// credentials (a signing error, or the identity resolution of the SDK's auth scheme,
// which it reports as "get identity: ...").
func credentialsUnavailable(err error) bool {
	var se *v4.SigningError
	if errors.As(err, &se) {
		return true
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) && oe.Err != nil {
		return strings.HasPrefix(oe.Err.Error(), "get identity: ")
	}
	return false
}
