package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/prepred/prepred/api/certgen"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// Bounds of BenchmarkTLSCost.
const (
	// tlsBenchRounds alternate the pairs, so that drift of a shared
	// machine hits both alike.
	tlsBenchRounds = 3
	// tlsBenchRequests is the number of requests of one pair in one round.
	tlsBenchRequests = 400
	// tlsBenchClients send them concurrently.
	tlsBenchClients = 4
)

// BenchmarkTLSCost measures what TLS costs end to end: two prep+pred pairs
// serve the colors model, one in plaintext, one with prep serving HTTPS
// and speaking mTLS to pred; tlsBenchClients clients send the red image
// through each in alternating rounds, over keep-alive connections and
// with a new connection (a full handshake) per request. It reports the
// throughput ratio TLS/plaintext of each mode over all rounds.
//
//	go test ./prep/e2e -run '^$' -bench TLSCost -benchtime 1x
func BenchmarkTLSCost(b *testing.B) {
	p := newPKI(b, "bench CA")
	p.issue(b, "pred", serverOptions())
	p.issue(b, "prep", serverOptions())
	p.issue(b, "prep-client", certgen.Options{Client: true})
	plainPred := predtest.Start(b)
	plainPrep := preptest.Start(b, "--pred-address", plainPred.GRPCAddr, "--model", "colors")
	tlsPred := predtest.StartTLS(b, credentials.NewTLS(p.clientConfig(b, "prep-client")), nil,
		"--tls-cert-file", p.cert("pred"), "--tls-key-file", p.key("pred"), "--tls-client-ca-file", p.caFile)
	tlsPrep := preptest.Start(b, append(prepTLSArgs(p, "prep-client"), "--pred-address", tlsPred.GRPCAddr, "--model", "colors",
		"--tls-cert-file", p.cert("prep"), "--tls-key-file", p.key("prep"))...)
	img, err := os.ReadFile(filepath.Join(predtest.RepoRoot(b), "testdata", "images", "red.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(img)})
	if err != nil {
		b.Fatal(err)
	}
	cfg := p.clientConfig(b, "")

	type pair struct {
		name string
		url  string
	}
	pairs := []pair{{"plaintext", plainPrep.URL}, {"tls", "https://" + tlsPrep.HTTPAddr}}
	elapsed := map[string]time.Duration{}
	for range b.N {
		for round := range tlsBenchRounds {
			for _, keepAlive := range []bool{true, false} {
				for _, pr := range pairs {
					client := httpsClient(cfg, keepAlive)
					client.Transport.(*http.Transport).MaxIdleConnsPerHost = tlsBenchClients
					// Warm the connections and the contract first.
					if a := doTLS(context.Background(), client, http.MethodPost, pr.url+"/predict/topk?k=1", body); a.status != http.StatusOK {
						b.Fatalf("%s: %v", pr.name, a.answer)
					}
					var next atomic.Int64
					var failed atomic.Pointer[tlsAnswer]
					start := time.Now()
					var wg sync.WaitGroup
					for range tlsBenchClients {
						wg.Go(func() {
							for next.Add(1) <= tlsBenchRequests {
								if a := doTLS(context.Background(), client, http.MethodPost, pr.url+"/predict/topk?k=1", body); a.status != http.StatusOK {
									failed.Store(&a)
									return
								}
							}
						})
					}
					wg.Wait()
					d := time.Since(start)
					if a := failed.Load(); a != nil {
						b.Fatalf("%s: %v", pr.name, a.answer)
					}
					mode := map[bool]string{true: "keepalive", false: "handshake"}[keepAlive]
					elapsed[pr.name+"/"+mode] += d
					b.Logf("round %d %s %s: %.0f requests/s", round+1, mode, pr.name, tlsBenchRequests/d.Seconds())
					client.CloseIdleConnections()
				}
			}
		}
	}
	for _, mode := range []string{"keepalive", "handshake"} {
		ratio := elapsed["plaintext/"+mode].Seconds() / elapsed["tls/"+mode].Seconds()
		b.ReportMetric(ratio, "tls/plain-throughput-"+mode)
		b.ReportMetric(float64(tlsBenchRequests*tlsBenchRounds*b.N)/elapsed["tls/"+mode].Seconds(), "tls-req/s-"+mode)
		b.ReportMetric(float64(tlsBenchRequests*tlsBenchRounds*b.N)/elapsed["plaintext/"+mode].Seconds(), "plain-req/s-"+mode)
	}
}
