package management

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
)

// from is a server-side context of a call from addr with the given
// authorization metadata.
func from(addr, authorization string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(addr), Port: 40000}})
	if authorization != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	}
	return ctx
}

// TestGRPCAccess checks the rule of the HTTP binding, with gRPC's codes:
// off is UNAVAILABLE, any other refusal PERMISSION_DENIED; a refused call
// reaches no repository.
func TestGRPCAccess(t *testing.T) {
	for _, tt := range []struct {
		name       string
		opts       Options
		addr, auth string
		code       codes.Code
		substr     string
	}{
		{"off", Options{}, "127.0.0.1", "", codes.Unavailable, "disabled"},
		{"loopback", Options{Enabled: true}, "127.0.0.1", "", codes.OK, ""},
		{"loopback v6", Options{Enabled: true}, "::1", "", codes.OK, ""},
		{"remote", Options{Enabled: true}, "10.1.2.3", "", codes.PermissionDenied, "only loopback callers"},
		{"no token", Options{Enabled: true, Token: "s3cret"}, "127.0.0.1", "", codes.PermissionDenied, `"authorization: Bearer <token>"`},
		{"wrong token", Options{Enabled: true, Token: "s3cret"}, "127.0.0.1", "Bearer s3cre", codes.PermissionDenied, "management token"},
		{"token, remote", Options{Enabled: true, Token: "s3cret"}, "10.1.2.3", "bearer s3cret", codes.OK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := &fakeRepository{}
			g := NewGRPC(repo, tt.opts)
			_, err := g.RepositoryModelUnload(from(tt.addr, tt.auth), &inferencepb.RepositoryModelUnloadRequest{ModelName: "colors"})
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.substr) {
				t.Fatalf("unload = %v, want %v containing %q", err, tt.code, tt.substr)
			}
			want := []string(nil)
			if tt.code == codes.OK {
				want = []string{"unload colors"}
			}
			if !slices.Equal(repo.Calls(), want) {
				t.Errorf("calls %v, want %v", repo.Calls(), want)
			}
		})
	}
}

func TestGRPCIndexAndErrors(t *testing.T) {
	repo := &fakeRepository{}
	g := NewGRPC(repo, Options{Enabled: true})
	ctx := from("127.0.0.1", "")
	all, err := g.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{})
	if err != nil || len(all.GetModels()) != 3 || all.GetModels()[0].GetReason() != "invalid config" || all.GetModels()[0].GetVersion() != "" {
		t.Errorf("index = %v, %v", all, err)
	}
	ready, err := g.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(ready.GetModels()) != 1 || ready.GetModels()[0].GetVersion() != "2" || ready.GetModels()[0].GetState() != "READY" {
		t.Errorf("ready index = %v, %v", ready, err)
	}
	if _, err := g.RepositoryModelLoad(ctx, &inferencepb.RepositoryModelLoadRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("load without a name = %v", err)
	}
	repo.err = status.Error(codes.NotFound, `model "x" is not in the model repository`)
	if _, err := g.RepositoryModelLoad(ctx, &inferencepb.RepositoryModelLoadRequest{ModelName: "x"}); status.Code(err) != codes.NotFound {
		t.Errorf("load of a missing model = %v", err)
	}
}
