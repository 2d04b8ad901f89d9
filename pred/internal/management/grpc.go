package management

import (
	"context"
	"maps"
	"slices"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
)

// GRPC is the API as Triton's repository RPCs of
// inference.GRPCInferenceService (RepositoryIndex, RepositoryModelLoad,
// RepositoryModelUnload), under the same rule as the HTTP binding: the
// token comes as the metadata "authorization: Bearer <token>". A call
// refused while the API is off is UNAVAILABLE, as Triton answers load and
// unload when it does not control models explicitly; a missing or wrong
// token, or a remote caller without a token configured, PERMISSION_DENIED.
type GRPC struct {
	repo   Repository
	access *Access
	log    *zap.Logger
}

// NewGRPC returns the gRPC binding of the API on repo.
func NewGRPC(repo Repository, o Options) *GRPC {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &GRPC{repo: repo, access: NewAccess(o), log: o.Logger}
}

// check applies the rule to the caller of ctx, returning the caller's
// address for the log.
func (g *GRPC) check(ctx context.Context) (string, error) {
	var authorization, addr string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authorization = v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	err := g.access.Check(authorization, addr, `the metadata "authorization: Bearer <token>"`)
	if err == nil {
		return addr, nil
	}
	if err.(*Refusal).Kind == RefusedDisabled {
		return addr, status.Error(codes.Unavailable, err.Error())
	}
	return addr, status.Error(codes.PermissionDenied, err.Error())
}

// RepositoryIndex implements GRPCInferenceService.RepositoryIndex: every
// model version with its state, or only the READY ones. pred has one
// repository, which any repository_name names.
func (g *GRPC) RepositoryIndex(ctx context.Context, req *inferencepb.RepositoryIndexRequest) (*inferencepb.RepositoryIndexResponse, error) {
	if _, err := g.check(ctx); err != nil {
		return nil, err
	}
	out := &inferencepb.RepositoryIndexResponse{}
	for _, e := range index(g.repo.List(), req.GetReady()) {
		out.Models = append(out.Models, &inferencepb.RepositoryIndexResponse_ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return out, nil
}

// RepositoryModelLoad implements GRPCInferenceService.RepositoryModelLoad:
// (re)load a model as the repository holds it. Triton's parameters that
// override the configuration or carry model files are INVALID_ARGUMENT.
func (g *GRPC) RepositoryModelLoad(ctx context.Context, req *inferencepb.RepositoryModelLoadRequest) (*inferencepb.RepositoryModelLoadResponse, error) {
	addr, err := g.check(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetParameters()) > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "load parameters %q are not supported: pred loads the model as the repository holds it",
			slices.Sorted(maps.Keys(req.GetParameters())))
	}
	if err := g.apply(ctx, addr, "load", req.GetModelName(), g.repo.LoadModel); err != nil {
		return nil, err
	}
	return &inferencepb.RepositoryModelLoadResponse{}, nil
}

// RepositoryModelUnload implements
// GRPCInferenceService.RepositoryModelUnload: take a model out of service;
// its in-flight requests finish first. Parameters (unload_dependents) have
// no meaning without ensembles and are ignored.
func (g *GRPC) RepositoryModelUnload(ctx context.Context, req *inferencepb.RepositoryModelUnloadRequest) (*inferencepb.RepositoryModelUnloadResponse, error) {
	addr, err := g.check(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.apply(ctx, addr, "unload", req.GetModelName(), g.repo.UnloadModel); err != nil {
		return nil, err
	}
	return &inferencepb.RepositoryModelUnloadResponse{}, nil
}

func (g *GRPC) apply(ctx context.Context, addr, action, model string, op func(context.Context, string) error) error {
	if model == "" {
		return status.Error(codes.InvalidArgument, "model_name is required")
	}
	log := g.log.With(zap.String("action", action), zap.String("model", model), zap.String("remote_addr", addr), zap.String("protocol", "grpc"))
	if err := op(ctx, model); err != nil {
		log.Warn("model repository request failed", zap.String("error", status.Convert(err).Message()))
		return err
	}
	log.Info("model repository request")
	return nil
}
