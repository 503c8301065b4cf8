package mlcv1

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PostingInProgressReason is the ErrorInfo reason erp-poster gives with
// ABORTED when the outcome is being posted by another call right now.
// ABORTED alone may also be an ERP's concurrency race (IFS 412 on
// If-Match) that erp-poster's own re-read-and-retry lost: only the answer
// with this reason is the other call finishing in moments, worth waiting
// for and posting again at once; a lost race is retried with back-off.
const PostingInProgressReason = "POSTING_IN_PROGRESS"

const errorDomain = "erp-poster.ml-connector"

// PostingInProgress is erp-poster's answer while another call posts the
// same outcome: ABORTED, with PostingInProgressReason.
func PostingInProgress(msg string) error {
	st := status.New(codes.Aborted, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: PostingInProgressReason, Domain: errorDomain}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// IsPostingInProgress says whether err is erp-poster's [PostingInProgress]
// answer.
func IsPostingInProgress(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Aborted {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == PostingInProgressReason && info.GetDomain() == errorDomain {
			return true
		}
	}
	return false
}
