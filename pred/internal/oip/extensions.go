package oip

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/tritonext"
)

// ModelConfig implements GRPCInferenceService.ModelConfig (Triton's model
// configuration extension): the configuration of a ready model version,
// NOT_FOUND for an unknown model or version, UNAVAILABLE for one that is
// not ready.
func (s *Service) ModelConfig(_ context.Context, req *inferencepb.ModelConfigRequest) (*inferencepb.ModelConfigResponse, error) {
	version, err := infer.ParseVersion(req.GetVersion())
	if err != nil {
		return nil, err
	}
	c, err := s.run.Config(req.GetName(), version)
	if err != nil {
		return nil, err
	}
	return &inferencepb.ModelConfigResponse{Config: tritonext.ModelConfig(req.GetName(), c)}, nil
}

// ModelStatistics implements GRPCInferenceService.ModelStatistics (Triton's
// statistics extension): the cumulative statistics of the ready versions of
// a model, of every model when the name is empty, of every version of the
// model when the version is empty.
func (s *Service) ModelStatistics(_ context.Context, req *inferencepb.ModelStatisticsRequest) (*inferencepb.ModelStatisticsResponse, error) {
	version, err := infer.ParseVersion(req.GetVersion())
	if err != nil {
		return nil, err
	}
	stats, err := s.run.Statistics(req.GetName(), version)
	if err != nil {
		return nil, err
	}
	return tritonext.ModelStatistics(stats), nil
}

// errNoRepository answers the repository RPCs of a service without a
// Repository.
var errNoRepository = status.Error(codes.Unavailable, "the model repository API is not served on this port")

// RepositoryIndex implements GRPCInferenceService.RepositoryIndex.
func (s *Service) RepositoryIndex(ctx context.Context, req *inferencepb.RepositoryIndexRequest) (*inferencepb.RepositoryIndexResponse, error) {
	if s.opts.Repository == nil {
		return nil, errNoRepository
	}
	return s.opts.Repository.RepositoryIndex(ctx, req)
}

// RepositoryModelLoad implements GRPCInferenceService.RepositoryModelLoad.
func (s *Service) RepositoryModelLoad(ctx context.Context, req *inferencepb.RepositoryModelLoadRequest) (*inferencepb.RepositoryModelLoadResponse, error) {
	if s.opts.Repository == nil {
		return nil, errNoRepository
	}
	return s.opts.Repository.RepositoryModelLoad(ctx, req)
}

// RepositoryModelUnload implements GRPCInferenceService.RepositoryModelUnload.
func (s *Service) RepositoryModelUnload(ctx context.Context, req *inferencepb.RepositoryModelUnloadRequest) (*inferencepb.RepositoryModelUnloadResponse, error) {
	if s.opts.Repository == nil {
		return nil, errNoRepository
	}
	return s.opts.Repository.RepositoryModelUnload(ctx, req)
}
