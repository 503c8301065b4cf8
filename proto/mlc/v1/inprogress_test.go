package mlcv1

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPostingInProgress(t *testing.T) {
	busy := PostingInProgress("payout x is being posted by another call")
	if status.Code(busy) != codes.Aborted || !IsPostingInProgress(busy) || !IsPostingInProgress(fmt.Errorf("post: %w", busy)) {
		t.Errorf("%v: want ABORTED, recognised (also wrapped)", busy)
	}
	for _, err := range []error{status.Error(codes.Aborted, "IFS 412: lost the race"), status.Error(codes.Unavailable, "down"), fmt.Errorf("plain")} {
		if IsPostingInProgress(err) {
			t.Errorf("%v taken for a posting in progress", err)
		}
	}
}
