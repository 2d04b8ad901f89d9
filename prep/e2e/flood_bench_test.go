package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/pred/proctest"
	"github.com/prepred/prepred/prep/preptest"
)

// Sizes of the peak-memory benchmark: the flood of issue 18 (100 clients
// each uploading 16 MB at once) against a budget well below its total.
const (
	benchFloodClients = 100
	benchFloodBody    = 16 << 20
	benchFloodBudget  = 128 << 20
	benchFloodRounds  = 3
	benchFloodDecode  = 32 << 20
)

// procStatusKB reads a "Vm..." line of /proc/<pid>/status, in KiB.
func procStatusKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	kb, err := proctest.StatusKB(pid, field)
	if err != nil {
		b.Fatal(err)
	}
	return kb
}

// BenchmarkFloodPeakRSS floods a real prep process (with --max-inflight-bytes
// 128 MiB, --max-decode-bytes 32 MiB) with 100 concurrent 16 MiB uploads, benchFloodRounds times, and
// reports its resident memory: before (baseline, after a warm-up request),
// at its peak (VmHWM), right after the flood and once the flood's memory
// has been returned to the operating system, against the budgets. The goal is
// peak <= baseline + budgets + 20%.
//
//	go test ./prep/e2e -run '^$' -bench FloodPeakRSS -benchtime 1x
func BenchmarkFloodPeakRSS(b *testing.B) {
	pred := predtest.Start(b)
	cmd := exec.Command(preptest.Binary(b), "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "colors",
		"--max-inflight-bytes", strconv.Itoa(benchFloodBudget), "--max-decode-bytes", strconv.Itoa(benchFloodDecode))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	addr := ""
	for addr == "" && lines.Scan() {
		var m map[string]any
		if json.Unmarshal(lines.Bytes(), &m) == nil && m["msg"] == "listening" {
			addr, _ = m["http_addr"].(string)
		}
	}
	go func() {
		for lines.Scan() { // keep the pipe drained
		}
	}()
	url := "http://" + addr
	good := redBody(&testing.T{})
	deadline := time.Now().Add(contractTimeout)
	for {
		resp, err := http.Post(url+"/predict/topk?k=1", "application/json", bytes.NewReader(good))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("prep did not answer within %v", contractTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	baseline := procStatusKB(b, pid, "VmRSS")
	body := make([]byte, benchFloodBody) // zeros: not an image
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: benchFloodClients, MaxIdleConnsPerHost: benchFloodClients}}
	codes := map[int]int{}
	var mu sync.Mutex
	b.ResetTimer()
	for range b.N {
		for range benchFloodRounds {
			var wg sync.WaitGroup
			for range benchFloodClients {
				wg.Go(func() {
					resp, err := client.Post(url+"/predict/label", "image/jpeg", bytes.NewReader(body))
					code := 0
					if err == nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
					mu.Lock()
					codes[code]++
					mu.Unlock()
				})
			}
			wg.Wait()
		}
	}
	b.StopTimer()
	peak := procStatusKB(b, pid, "VmHWM")
	after := procStatusKB(b, pid, "VmRSS")
	// The flood's last burst ends with a return of its memory (bursts within
	// the reclaim interval share one, after it).
	returns := metricValue(b, url, "prep_memory_returns_total", "")
	for end := time.Now().Add(inflight.DefaultReclaimInterval + 5*time.Second); metricValue(b, url, "prep_memory_returns_total", "") <= returns; {
		if time.Now().After(end) {
			b.Fatalf("no return of memory within %v of the flood's end", inflight.DefaultReclaimInterval+5*time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	returned := procStatusKB(b, pid, "VmRSS")
	b.ReportMetric(float64(baseline)/1024, "baseline_MiB")
	b.ReportMetric(float64(peak)/1024, "peak_MiB")
	b.ReportMetric(float64(after)/1024, "after_MiB")
	b.ReportMetric(float64(returned)/1024, "returned_MiB")
	b.ReportMetric(float64(peak-baseline)*1024/(benchFloodBudget+benchFloodDecode), "peak_over_baseline/budgets")
	b.Logf("answers by status (0: connection error): %v", codes)
}
