package tritonext

import (
	"time"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/internal/metrics"
)

// ModelStatistics expresses the statistics of model versions as Triton's
// ModelStatisticsResponse.
func ModelStatistics(stats []metrics.Stats) *inferencepb.ModelStatisticsResponse {
	out := &inferencepb.ModelStatisticsResponse{ModelStats: make([]*inferencepb.ModelStatistics, len(stats))}
	for i, s := range stats {
		ms := &inferencepb.ModelStatistics{
			Name:           s.Model,
			Version:        s.Version,
			InferenceCount: s.InferenceCount,
			ExecutionCount: s.ExecutionCount,
			InferenceStats: &inferencepb.InferStatistics{
				Success:       duration(s.Success),
				Fail:          duration(s.Fail),
				Queue:         duration(s.Queue),
				ComputeInput:  duration(s.ComputeInput),
				ComputeInfer:  duration(s.ComputeInfer),
				ComputeOutput: duration(s.ComputeOutput),
			},
			BatchStats: []*inferencepb.InferBatchStatistics{},
		}
		if !s.LastInference.IsZero() {
			ms.LastInference = uint64(s.LastInference.UnixMilli())
		}
		for _, b := range s.Batches {
			ms.BatchStats = append(ms.BatchStats, &inferencepb.InferBatchStatistics{
				BatchSize:     b.Size,
				ComputeInput:  duration(b.ComputeInput),
				ComputeInfer:  duration(b.ComputeInfer),
				ComputeOutput: duration(b.ComputeOutput),
			})
		}
		out.ModelStats[i] = ms
	}
	return out
}

func duration(d metrics.Duration) *inferencepb.StatisticDuration {
	return &inferencepb.StatisticDuration{Count: d.Count, Ns: uint64(max(d.Total, 0) / time.Nanosecond)}
}
