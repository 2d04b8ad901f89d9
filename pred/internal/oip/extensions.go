package oip

import (
	"context"

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
