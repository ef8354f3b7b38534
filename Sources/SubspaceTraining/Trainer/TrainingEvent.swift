/// What a training run reports as it goes. The library never prints: the executable turns these into
/// progress lines on rank 0 and `metrics.jsonl`.
public enum TrainingEvent: Sendable {
    /// A line of setup information (model, data, plan).
    case info(String)
    case step(StepMetrics)
    case evaluation(EvaluationMetrics)
    case checkpoint(step: Int, path: String)
    /// Training stopped early on request (SIGTERM) after saving a checkpoint.
    case interrupted(step: Int)
}

public struct StepMetrics: Sendable, Codable, Equatable {
    public var step: Int
    public var loss: Double
    public var lr: Double
    public var gradNorm: Double
    public var tokensPerSecond: Double
    /// Counted (unmasked) positions in the step's global batch.
    public var tokens: Int
    public var elapsedSeconds: Double

    enum CodingKeys: String, CodingKey {
        case step, loss, lr
        case gradNorm = "grad_norm"
        case tokensPerSecond = "tokens_per_s"
        case tokens
        case elapsedSeconds = "elapsed_s"
    }
}

public struct EvaluationMetrics: Sendable, Codable, Equatable {
    public var step: Int
    public var valLoss: Double
    public var perplexity: Double
    /// SFT only: share of held-out examples whose greedy generation equals the reference answer.
    public var exactMatch: Double?
    public var exactMatchExamples: Int?

    enum CodingKeys: String, CodingKey {
        case step
        case valLoss = "val_loss"
        case perplexity
        case exactMatch = "exact_match"
        case exactMatchExamples = "exact_match_examples"
    }
}
