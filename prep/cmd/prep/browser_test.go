package main

// The web page at / in a real headless Chromium, driven over the Chrome
// DevTools Protocol, in front of the real pred.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/prepred/prepred/pred/predtest"
)

// screenshot, if set, is where TestWebPageInChromium writes a PNG of the
// page showing ResNet-50's explanation of the photo (the README's
// picture):
//
//	go test ./prep/cmd/prep -run TestWebPageInChromium -screenshot $PWD/prep/internal/httpapi/web/screenshots/explain.png
var screenshot = flag.String("screenshot", "", "write a PNG screenshot of the page with an explanation to this path")

// browserTimeout bounds the browser's whole life in the test.
const browserTimeout = 2 * time.Minute

// skipBrowserEnv, set to 1, skips the browser test explicitly; without it a
// missing Chromium fails the test.
const skipBrowserEnv = "PREPRED_SKIP_BROWSER"

// chromiumPath finds the Chromium binary: $PREPRED_CHROMIUM, or the names
// Debian's chromium package and other distributions install.
func chromiumPath() string {
	if p := os.Getenv("PREPRED_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserOutput keeps what the browser process writes, for failure
// messages (a browser that cannot start says why there).
type browserOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *browserOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if n := o.buf.Len(); n > 2*maxBrowserOutput {
		o.buf.Next(n - maxBrowserOutput) // keep the end, where a crash says why
	}
	return len(p), nil
}

// String returns the last maxBrowserOutput bytes written.
func (o *browserOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf.Bytes()
	return string(b[max(0, len(b)-maxBrowserOutput):])
}

// maxBrowserOutput bounds the browser output shown in failure messages.
const maxBrowserOutput = 8 << 10

// startBrowser starts headless Chromium with a fresh profile and no network
// activity of its own, and returns a tab's context and the browser's
// output.
func startBrowser(t *testing.T) (context.Context, *browserOutput) {
	t.Helper()
	if os.Getenv(skipBrowserEnv) == "1" {
		t.Skipf("%s=1: the browser test is skipped", skipBrowserEnv)
	}
	path := chromiumPath()
	if path == "" {
		t.Fatalf("Chromium is not installed; the web page test needs it: apt-get install -y chromium (Debian package \"chromium\"), or set PREPRED_CHROMIUM to its path, or %s=1 to skip this test", skipBrowserEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	t.Cleanup(cancel)
	out := &browserOutput{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // containers have a small /dev/shm
		chromedp.CombinedOutput(out),
	)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	return tab, out
}

// pageErrors collects the uncaught JavaScript exceptions of a tab.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
}

// listen starts the browser, if it is not running yet, and collects the
// tab's exceptions from now on.
func (p *pageErrors) listen(t *testing.T, tab context.Context, out *browserOutput) {
	t.Helper()
	err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber, msg))
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v\n--- %s output ---\n%s", err, chromiumPath(), out)
	}
}

func (p *pageErrors) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Errorf("JavaScript exception: %s", e)
	}
}

// classifyInPage uploads path through the page's file input and waits for
// the page to show a result or an error; it returns the top label.
func classifyInPage(t *testing.T, tab context.Context, path string) string {
	t.Helper()
	// Forget the previous result, so the wait below is for this upload.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[any](`document.body.dataset.state = "idle"`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab,
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{path}),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"], body[data-state="error"]`)),
	); err != nil {
		t.Fatalf("upload %s: %v", filepath.Base(path), err)
	}
	state, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.dataset.state`))
	if err != nil {
		t.Fatal(err)
	}
	if state != "done" {
		msg, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("error")))
		t.Fatalf("the page shows an error for %s: %s", filepath.Base(path), msg)
	}
	label, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("top-label")))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(label)
}

func TestWebPageInChromium(t *testing.T) {
	tab, out := startBrowser(t)
	pred := predtest.Start(t)
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "colors")
	p.waitContract(t)

	var errs pageErrors
	errs.listen(t, tab, out)
	if err := chromedp.Do(tab, chromedp.Navigate(p.URL+"/"), chromedp.WaitReady(chromedp.ID("file"))); err != nil {
		t.Fatalf("open %s/: %v\n--- %s output ---\n%s", p.URL, err, chromiumPath(), out)
	}

	red := testImage(t, "red", color.RGBA{255, 0, 0, 255})
	if label := classifyInPage(t, tab, red); label != "red" {
		t.Errorf("top label %q, want red", label)
	}
	rows, err := chromedp.Run(tab, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#topk li")].map(li => li.dataset.label + "=" + li.dataset.probability)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || !strings.HasPrefix(rows[0], "red=") {
		t.Errorf("top-5 rows %q", rows)
	}
	timing, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("timing")))
	if err != nil {
		t.Fatal(err)
	}
	// Server-reported stages and the round trip the page measured.
	if !regexp.MustCompile(`server [0-9.]+ ms \(.*pred [0-9.]+ ms.*\) · round trip [0-9.]+ ms · colors v1`).MatchString(timing) {
		t.Errorf("timing %q", timing)
	}

	// Explain the label of a red square on the colors spec's mean color
	// (testdata/images/red-square.png, 256x256, the square from (80, 80)):
	// with progress shown meanwhile, the overlay appears beside the label,
	// the size of the image, tinted red at the square's edge and unchanged
	// far from it.
	square := filepath.Join(predtest.RepoRoot(t), "testdata", "images", "red-square.png")
	if label := classifyInPage(t, tab, square); label != "red" {
		t.Errorf("red square: top label %q, want red", label)
	}
	if err := chromedp.Do(tab,
		chromedp.Click(chromedp.ID("explain")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-explain="done"], body[data-explain="error"]`)),
	); err != nil {
		t.Fatalf("explain: %v", err)
	}
	if state, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.dataset.explain`)); err != nil || state != "done" {
		msg, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("explain-status")))
		t.Fatalf("explain: state %q (%v): %s", state, err, msg)
	}
	px, err := chromedp.Run(tab, chromedp.Evaluate[[]int](`(() => {
		const img = document.getElementById("overlay");
		const c = document.createElement("canvas");
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const g = c.getContext("2d");
		g.drawImage(img, 0, 0);
		const edge = g.getImageData(74, 168, 1, 1).data, far = g.getImageData(8, 8, 1, 1).data;
		return [img.naturalWidth, img.naturalHeight, edge[0], edge[1], far[0], far[1], far[2]];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(px) != 7 || px[0] != 256 || px[1] != 256 {
		t.Fatalf("overlay %v, want a 256x256 image", px)
	}
	if px[2] < 134 || px[3] > 106 {
		t.Errorf("overlay at the square's edge is R %d G %d, want the background (124, 116) tinted red", px[2], px[3])
	}
	if px[4] != 124 || px[5] != 116 || px[6] != 104 {
		t.Errorf("overlay far from the square is %v, want the background (124, 116, 104)", px[4:])
	}
	caption, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("explain-caption")))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`P\(red\) = [0-9.]+%.* 226 inferences in [0-9.]+ s`).MatchString(caption) {
		t.Errorf("explanation caption %q", caption)
	}
	if visible, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!document.getElementById("explanation").hidden && document.getElementById("explain-progress").hidden`)); err != nil || !visible {
		t.Errorf("after the explanation: overlay shown and progress hidden = %v (%v)", visible, err)
	}

	// The model list comes from pred: classify with resnet50 too.
	if err := chromedp.Do(tab,
		chromedp.WaitReady(chromedp.CSS(`#model option[value="resnet50"]`)),
		chromedp.SetValue(chromedp.ID("model"), "resnet50"),
	); err != nil {
		t.Fatalf("choose resnet50: %v", err)
	}
	photo := filepath.Join(predtest.RepoRoot(t), "testdata", "images", "photo-500x375.jpg")
	if label := classifyInPage(t, tab, photo); !strings.HasPrefix(label, "class_") {
		t.Errorf("resnet50 top label %q, want class_NNNN", label)
	}
	if *screenshot != "" {
		// The README's picture: the photo's explanation by ResNet-50.
		if err := chromedp.Do(tab,
			chromedp.Click(chromedp.ID("explain")),
			chromedp.WaitVisible(chromedp.CSS(`body[data-explain="done"], body[data-explain="error"]`)),
		); err != nil {
			t.Fatalf("explain the photo: %v", err)
		}
		if msg, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("explain-status"))); msg != "" {
			t.Fatalf("explain the photo: %s", msg)
		}
		shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A detector beside the classifiers: its boxes drawn on the image.
	checkDetectorInPage(t, tab)
	errs.check(t)
}
