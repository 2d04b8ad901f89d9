package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseSecurityConfig(t *testing.T) {
	env := map[string]string{
		"PREP_TLS_CERT_FILE": "prep.crt", "PREP_TLS_KEY_FILE": "prep.key",
		"PRED_TLS_CA_FILE": "ca.crt", "PRED_TLS_CLIENT_CERT_FILE": "c.crt", "PRED_TLS_CLIENT_KEY_FILE": "c.key",
		"PRED_TLS_SERVER_NAME": "pred.internal", "PREP_API_KEYS": "a,b", "PREP_API_KEYS_FILE": "keys.txt",
	}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := tlsConfig{certFile: "prep.crt", keyFile: "prep.key", predTLS: true, predCAFile: "ca.crt", predCertFile: "c.crt", predKeyFile: "c.key", predServerName: "pred.internal"}
	if c.tls != want || c.apiKeys != "a,b" || c.apiKeysFile != "keys.txt" {
		t.Fatalf("from env: %+v, keys %q %q", c.tls, c.apiKeys, c.apiKeysFile)
	}
	// The flag wins; a server name alone implies TLS to pred.
	c, err = parseConfig([]string{"-pred-tls-server-name", "other"}, func(k string) string { return "" }, io.Discard)
	if err != nil || !c.tls.predTLS || c.tls.predServerName != "other" {
		t.Fatalf("server name flag: %+v, %v", c.tls, err)
	}
	if c, err := parseConfig(nil, func(string) string { return "" }, io.Discard); err != nil || c.tls.predTLS || c.tls.certFile != "" {
		t.Fatalf("defaults: %+v, %v; want plaintext", c.tls, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert-file", "a"}, "-tls-cert-file and -tls-key-file"},
		{[]string{"-pred-tls-client-cert-file", "a"}, "-pred-tls-client-cert-file and -pred-tls-client-key-file"},
		{[]string{"-pred-tls=maybe"}, "invalid boolean"},
	} {
		if _, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
