import Foundation
import Testing
@testable import SubspaceStudies

/// The learning-rate sweep on synthetic score functions (no training): it must extend past an edge until
/// the optimum is bracketed, say when it cannot, and repeat the chosen rate over every seed.
@Suite struct SweepTests {
    /// A loss with its minimum at `optimum` (quadratic in log10 rate), plus a small per-seed offset.
    func loss(optimum: Double) -> (Double, UInt64) -> (folder: String, score: Double) {
        { lr, seed in ("lr\(lr)-s\(seed)", pow(log10(lr) - log10(optimum), 2) + 0.01 * Double(seed)) }
    }

    @Test func extendsUpwardsUntilBracketed() throws {
        var calls: [(Double, UInt64)] = []
        let settings = SweepSettings(learningRates: [1e-4, 1e-3], maxExtensions: 3, seeds: [1, 2, 3])
        let r = try Sweep.run(method: "m", settings: settings) { lr, seed in
            calls.append((lr, seed))
            return loss(optimum: 5e-2)(lr, seed)
        }
        #expect(abs(r.bestLearningRate - 1e-1) < 1e-12 || abs(r.bestLearningRate - 1e-2) < 1e-12)
        #expect(r.bracketed)
        #expect(r.points.count >= 4)
        #expect(r.seedRuns.map(\.seed) == [1, 2, 3])
        #expect(r.score?.values.count == 3)
        // The sweep points use seed 1 only; the other seeds run only at the chosen rate.
        #expect(calls.filter { $0.1 != 1 }.allSatisfy { abs($0.0 - r.bestLearningRate) < 1e-15 })
    }

    @Test func saysWhenTheOptimumIsNotBracketed() throws {
        let settings = SweepSettings(learningRates: [1e-3, 1e-2], maxExtensions: 1, seeds: [1, 2, 3])
        let r = try Sweep.run(method: "m", settings: settings, train: loss(optimum: 1e-7))
        #expect(!r.bracketed)
        #expect(abs(r.bestLearningRate - 1e-4) < 1e-15)
        #expect(r.note.contains("not bracketed"))
    }

    @Test func divergedRunsLoseAndInteriorOptimumNeedsNoExtension() throws {
        let settings = SweepSettings(learningRates: [1e-4, 1e-3, 1e-2], maxExtensions: 2, seeds: [7, 8, 9])
        let r = try Sweep.run(method: "m", settings: settings) { lr, seed in
            lr > 5e-3 ? ("x", .nan) : loss(optimum: 1e-3)(lr, seed)
        }
        #expect(r.bestLearningRate == 1e-3)
        #expect(r.bracketed)
        #expect(r.points.count == 3)
        #expect(r.points.last?.diverged == 1)
        #expect(r.note == "grid as configured")
    }

    @Test func settingsProblemsNameTheKey() {
        #expect(SweepSettings(learningRates: [], seeds: [1]).problems(prefix: "study.sweep").first?.contains("study.sweep.learning_rates") == true)
        #expect(SweepSettings(learningRates: [1e-3], seeds: [1, 1]).problems(prefix: "s").contains("s.seeds: values repeat"))
    }
}
