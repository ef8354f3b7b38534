import Foundation
import SubspaceCore

/// A run's `metrics.jsonl`: one JSON object per optimizer step (`step`, `loss`, …) and one per
/// evaluation (`step`, `val_loss`, `perplexity`, `exact_match`?, …), as `MetricsLog` writes them.
public struct RunMetrics: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var step: Int
        public var loss: Double
    }

    public struct Evaluation: Sendable, Equatable {
        public var step: Int
        public var valLoss: Double
        public var perplexity: Double?
        public var exactMatch: Double?
        public var exactMatchExamples: Int?
    }

    /// By step, ascending; a step logged twice keeps its last line.
    public var steps: [Step]
    public var evaluations: [Evaluation]

    public init(steps: [Step], evaluations: [Evaluation]) {
        self.steps = steps
        self.evaluations = evaluations
    }

    /// Parses a metrics file. Lines that are neither steps nor evaluations (other events) are skipped;
    /// a line that is not JSON is an error naming the file and line.
    public static func read(path: String) throws -> RunMetrics {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw AnalysisError(file: path, "cannot read: \(FileSystemMessage.reason(error))")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String = "metrics.jsonl") throws -> RunMetrics {
        var steps: [Int: Step] = [:]
        var evaluations: [Int: Evaluation] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw AnalysisError(file: file, "line \(number + 1) is not a JSON object")
            }
            func double(_ key: String) -> Double? { (object[key] as? NSNumber)?.doubleValue }
            guard let step = (object["step"] as? NSNumber).map({ $0.intValue }) else { continue }
            if let valLoss = double("val_loss") {
                evaluations[step] = Evaluation(step: step, valLoss: valLoss, perplexity: double("perplexity"),
                                               exactMatch: double("exact_match"),
                                               exactMatchExamples: (object["exact_match_examples"] as? NSNumber)?.intValue)
            } else if let loss = double("loss") {
                steps[step] = Step(step: step, loss: loss)
            }
        }
        return RunMetrics(steps: steps.values.sorted { $0.step < $1.step },
                          evaluations: evaluations.values.sorted { $0.step < $1.step })
    }

    /// The training loss of the first step (step 1 when logged).
    public var initialLoss: Double? { steps.first?.loss }
    public var finalTrainLoss: Double? { steps.last?.loss }
    public var finalValLoss: Double? { evaluations.last?.valLoss }
    public var lastStep: Int? { max(steps.last?.step ?? 0, evaluations.last?.step ?? 0) > 0 ? max(steps.last?.step ?? 0, evaluations.last?.step ?? 0) : nil }
    /// Exact match of the last evaluation that measured it.
    public var finalExactMatch: Evaluation? { evaluations.last { $0.exactMatch != nil } }

    /// The first evaluation step whose validation loss is ≤ `target`, nil if none.
    public func stepsToReach(_ target: Double) -> Int? {
        evaluations.first { $0.valLoss <= target }?.step
    }
}
