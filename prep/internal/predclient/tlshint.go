package predclient

import (
	"fmt"
	"strings"
)

// plaintextRefused is how gRPC reports a server that closed the
// connection before sending its HTTP/2 preface: what a pred serving TLS
// does to a plaintext client.
const plaintextRefused = "error reading server preface: EOF"

// explain adds what a plaintext client refused by pred most likely needs
// to an error of a call; other errors come back as they are. The gRPC
// code stays (the error wraps err).
func (c *Client) explain(err error) error {
	if err == nil || c.cfg.Credentials != nil || !strings.Contains(err.Error(), plaintextRefused) {
		return err
	}
	return fmt.Errorf("%w (prep dials pred in plaintext: if pred serves TLS, set PRED_TLS_CA_FILE, or PRED_TLS=true for the system roots)", err)
}
