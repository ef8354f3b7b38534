import Foundation
import SubspaceAnalysis

/// A per-method learning-rate sweep that brackets its optimum, then repeats the chosen rate over seeds —
/// what a reviewer asks of any "method A beats method B" claim: each method at its own best learning rate,
/// the best not sitting on the edge of the grid, and a spread over seeds.
public struct SweepSettings: Sendable, Equatable, Codable {
    /// The starting grid (log-spaced; sorted here). One value and no extensions = no sweep.
    public var learningRates: [Double]
    /// How many points the sweep may add beyond each edge, one grid step at a time, while the best is there.
    public var maxExtensions: Int
    /// The seeds every method is repeated over at its chosen rate (≥ 3 for a spread).
    public var seeds: [UInt64]
    /// How many of `seeds` each grid point is trained with (1: the sweep itself uses the first seed).
    public var sweepSeeds: Int

    public init(learningRates: [Double], maxExtensions: Int = 2, seeds: [UInt64] = [1, 2, 3], sweepSeeds: Int = 1) {
        self.learningRates = learningRates.sorted()
        self.maxExtensions = maxExtensions
        self.seeds = seeds
        self.sweepSeeds = max(1, min(sweepSeeds, seeds.count))
    }

    /// The grid's step as a factor (the geometric mean of neighbour ratios; ×4 for a one-point grid).
    public var stepFactor: Double {
        let g = learningRates
        guard g.count > 1, let first = g.first, let last = g.last, first > 0 else { return 4 }
        return pow(last / first, 1 / Double(g.count - 1))
    }

    /// Problems with the settings, each naming the key under `prefix` (empty when valid).
    public func problems(prefix: String) -> [String] {
        var out: [String] = []
        if learningRates.isEmpty || learningRates.contains(where: { !($0 > 0) || !$0.isFinite }) {
            out.append("\(prefix).learning_rates: must be a non-empty list of positive numbers")
        }
        if Set(learningRates).count != learningRates.count { out.append("\(prefix).learning_rates: values repeat") }
        if maxExtensions < 0 || maxExtensions > 8 { out.append("\(prefix).max_extensions: must be in 0...8") }
        if seeds.isEmpty { out.append("\(prefix).seeds: must be a non-empty list") }
        if Set(seeds).count != seeds.count { out.append("\(prefix).seeds: values repeat") }
        return out
    }
}

/// One learning rate's runs in a sweep.
public struct SweepPoint: Sendable, Codable, Equatable {
    public var learningRate: Double
    /// The score (lower is better, e.g. final validation loss) over the seeds this rate was trained with;
    /// a diverged run (non-finite score) counts as +∞ and is listed in `diverged`.
    public var score: Statistic?
    public var seeds: [UInt64]
    public var folders: [String]
    public var diverged: Int
}

/// What a sweep found for one method.
public struct SweepResult: Sendable, Codable, Equatable {
    public var method: String
    /// Every rate tried, ascending.
    public var points: [SweepPoint]
    public var bestLearningRate: Double
    /// Whether the best rate has a tried rate on both sides (false: the extension limit was hit at an edge).
    public var bracketed: Bool
    /// Said in reports: how the grid was extended, or why the optimum is not bracketed.
    public var note: String
    /// The chosen rate's runs over every seed.
    public var seedRuns: [SeedRun]
    public var score: Statistic?

    public struct SeedRun: Sendable, Codable, Equatable {
        public var seed: UInt64
        public var folder: String
        public var score: Double
    }
}

public enum Sweep {
    /// Sweeps `settings.learningRates` (extending past an edge while the best sits there, up to
    /// `maxExtensions` steps per side), picks the rate with the lowest mean score, and trains it over every
    /// seed. `train(rate, seed)` is a collective that returns the run's folder and score, the same on every
    /// rank (RunStages.finalMetric broadcasts it), so all ranks walk the same grid.
    public static func run(method: String, settings: SweepSettings,
                           train: (_ learningRate: Double, _ seed: UInt64) throws -> (folder: String, score: Double)) throws -> SweepResult {
        precondition(!settings.learningRates.isEmpty && !settings.seeds.isEmpty, "validated by SweepSettings.problems")
        var points: [Double: SweepPoint] = [:]
        let sweepSeeds = Array(settings.seeds.prefix(settings.sweepSeeds))
        func evaluate(_ lr: Double, seeds: [UInt64]) throws {
            var p = points[lr] ?? SweepPoint(learningRate: lr, score: nil, seeds: [], folders: [], diverged: 0)
            var scores = p.score?.values ?? []
            for seed in seeds where !p.seeds.contains(seed) {
                let (folder, score) = try train(lr, seed)
                p.seeds.append(seed)
                p.folders.append(folder)
                if score.isFinite { scores.append(score) } else { scores.append(.infinity); p.diverged += 1 }
            }
            p.score = Statistic(scores)
            points[lr] = p
        }
        func mean(_ lr: Double) -> Double { points[lr]?.score.map { $0.mean.isNaN ? .infinity : $0.mean } ?? .infinity }

        for lr in settings.learningRates { try evaluate(lr, seeds: sweepSeeds) }
        let factor = settings.stepFactor
        var low = 0, high = 0
        var extended: [String] = []
        while true {
            let grid = points.keys.sorted()
            let best = grid.min { (mean($0), $0) < (mean($1), $1) }!
            if grid.count == 1 && settings.maxExtensions == 0 { break }
            if best == grid.first!, low < settings.maxExtensions {
                low += 1
                let lr = best / factor
                extended.append(String(format: "%.3g", lr))
                try evaluate(lr, seeds: sweepSeeds)
            } else if best == grid.last!, high < settings.maxExtensions {
                high += 1
                let lr = best * factor
                extended.append(String(format: "%.3g", lr))
                try evaluate(lr, seeds: sweepSeeds)
            } else {
                break
            }
        }
        let grid = points.keys.sorted()
        let best = grid.min { (mean($0), $0) < (mean($1), $1) }!
        let bracketed = best != grid.first! && best != grid.last!
        try evaluate(best, seeds: settings.seeds)
        let chosen = points[best]!
        let runs = zip(chosen.seeds, chosen.folders).compactMap { seed, folder -> SweepResult.SeedRun? in
            guard settings.seeds.contains(seed), let i = chosen.seeds.firstIndex(of: seed) else { return nil }
            return SweepResult.SeedRun(seed: seed, folder: folder, score: chosen.score!.values[i])
        }
        var note = extended.isEmpty ? "grid as configured" : "extended to " + extended.joined(separator: ", ")
        if !bracketed {
            note += grid.count == 1 ? "; a single rate: no sweep"
                : "; the best rate \(String(format: "%.3g", best)) is at the \(best == grid.first! ? "low" : "high") edge after \(settings.maxExtensions) extension(s): the optimum is not bracketed"
        }
        return SweepResult(method: method, points: grid.map { points[$0]! }, bestLearningRate: best, bracketed: bracketed,
                           note: note, seedRuns: runs, score: Statistic(runs.map(\.score)))
    }
}
