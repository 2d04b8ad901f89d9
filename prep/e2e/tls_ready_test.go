package e2e

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/credentials"

	"github.com/prepred/prepred/api/certgen"
	"github.com/prepred/prepred/pred/predtest"
)

// TestReadyNamesTLSFailureAfterContract: prep has loaded its contract over
// mTLS when pred is replaced, on the same address, by one whose certificate
// comes from a CA prep does not trust. prep's /ready turns 503 naming the
// refused handshake's cause (not only "not reachable"), predictions are
// 503, and nothing is sent in plaintext.
func TestReadyNamesTLSFailureAfterContract(t *testing.T) {
	p := newPKI(t, "prepred test CA")
	pred := startMTLSPred(t, p)
	p.issue(t, "prep-client", certgen.Options{Client: true})
	prep := startPrep(t, pred.GRPCAddr, prepTLSArgs(p, "prep-client")...)
	waitPrepReady(t, http.DefaultClient, prep.URL, http.StatusOK, `"spec_fingerprint"`)
	expectLabel(t, predictRed(t, prep, redBody(t)), "red", 1)

	if code := pred.Stop(); code != 0 {
		t.Fatalf("pred exited with %d", code)
	}
	other := newPKI(t, "some other CA")
	other.issue(t, "pred", serverOptions())
	probe := other.clientConfig(t, "")
	probe.Certificates = p.clientConfig(t, "probe").Certificates
	predtest.StartTLS(t, credentials.NewTLS(probe), nil, "--model-repository", release(t, []int64{1}, nil), "--grpc-addr", pred.GRPCAddr,
		"--tls-cert-file", other.cert("pred"), "--tls-key-file", other.key("pred"), "--tls-client-ca-file", p.caFile)

	got := waitPrepReady(t, http.DefaultClient, prep.URL, http.StatusServiceUnavailable, "not reachable", "x509: certificate signed by unknown authority")
	if code, _ := got.errorCode(); code != "not_ready" {
		t.Errorf("/ready = %v, want not_ready", got.answer)
	}
	t.Logf("/ready: %s", got.body)
	if a := predictRed(t, prep, redBody(t)); a.status != http.StatusServiceUnavailable {
		t.Errorf("prediction while pred's certificate is not trusted: %v, want 503", a)
	}
}
