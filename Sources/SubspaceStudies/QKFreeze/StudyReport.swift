import SubspaceTraining
import Foundation
import SubspaceAnalysis
import SubspaceCore

/// The study's outputs: results.json (everything measured), report.md (tables) and report.html (the same
/// tables and three inline SVG plots: validation perplexity curves, parameter efficiency, throughput).
public enum StudyReport {
    /// Writes the three files into `folder` (atomically) and returns their paths.
    public static func write(_ results: StudyResults, to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let files: [(String, [UInt8])] = [
            ("results.json", Array(try StudyResults.encoder.encode(results)) + Array("\n".utf8)),
            ("report.md", Array(markdown(results).utf8)),
            ("report.html", Array(html(results).utf8)),
        ]
        var paths: [String] = []
        for (name, bytes) in files {
            let path = (folder as NSString).appendingPathComponent(name)
            try AtomicFile.write(bytes, to: path)
            paths.append(path)
        }
        return paths
    }

    // MARK: Formatting

    static func count(_ n: Int) -> String {
        let digits = String(n)
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func stat(_ s: Statistic?, _ format: String = "%.3f") -> String {
        guard let s else { return "–" }
        let mean = String(format: format, s.mean)
        return s.values.count > 1 ? "\(mean) ± \(String(format: format, s.std))" : mean
    }

    static func megabytes(_ s: Statistic?) -> String {
        guard let s else { return "–" }
        let mb = Statistic(s.values.map { $0 / 1_048_576 })
        return stat(mb, "%.0f") + " MiB"
    }

    static func percent(_ part: Int, of total: Int) -> String {
        total > 0 ? String(format: "%.2f%%", 100 * Double(part) / Double(total)) : "–"
    }

    static func targetLine(_ r: StudyResults) -> String {
        guard let t = r.targetPerplexity else { return "Target perplexity: none (no evaluations)" }
        return String(format: "Target perplexity: %.3f", t)
            + (r.targetSource == "auto" ? " (auto: the highest final validation perplexity of any run, so every run reaches it)" : " (from study.target_perplexity)")
    }

    /// Rows of the per-mode table: mode, total, trainable, frozen, final PPL, train loss, tokens/s,
    /// wall time, steps and seconds to target, peak memory, freeze check.
    static func modeRows(_ r: StudyResults) -> [[String]] {
        r.summaries.map { s in
            let p = s.parameters
            let seeds = s.seeds.count
            let reached = r.targetPerplexity == nil ? "–" : "\(stat(s.stepsToTarget, "%.0f"))" + (s.reachedTarget < seeds ? " (\(s.reachedTarget)/\(seeds) reached)" : "")
            return [s.mode.rawValue, count(p.total), "\(count(p.trainable)) (\(percent(p.trainable, of: p.total)))",
                    "\(count(p.frozen)) (\(percent(p.frozen, of: p.total)))", stat(s.finalPerplexity), stat(s.finalTrainLoss, "%.4f"),
                    stat(s.tokensPerSecond, "%.0f"), stat(s.wallSeconds, "%.1f"), reached, stat(s.secondsToTarget, "%.1f"),
                    megabytes(s.peakMemoryBytes), s.freezeVerified ? "ok" : "FAILED"]
        }
    }

    static let modeHeader = ["mode", "total", "trainable", "frozen", "final val PPL", "final train loss", "tokens/s", "wall s",
                             "steps to target", "s to target", "peak RSS / rank", "freeze check"]

    static func runRows(_ r: StudyResults) -> [[String]] {
        r.groups.map { g in
            let ranks = g.ranks.count == 1 ? "\(g.ranks[0])" : "\(g.ranks.first!)–\(g.ranks.last!)"
            let memory = g.memory.map { String(format: "%.0f", Double($0.peakBytes) / 1_048_576) }.joined(separator: ", ") + " MiB"
            let freeze = g.freeze.passed
                ? (g.freeze.frozenTensors > 0 ? "ok: \(g.freeze.frozenTensors) frozen tensors bit-identical, all others trained" : "ok: no frozen tensors, all trained")
                : "FAILED: " + (g.freeze.changed.map { "\($0) changed" } + g.freeze.unchangedTrainable.map { "\($0) did not train" }).joined(separator: "; ")
            return [g.mode.rawValue, String(g.seed), ranks, g.finalPerplexity.map { String(format: "%.3f", $0) } ?? "–",
                    g.finalTrainLoss.map { String(format: "%.4f", $0) } ?? "–", String(format: "%.0f", g.tokensPerSecond),
                    String(format: "%.1f", g.wallSeconds), memory, freeze, g.output]
        }
    }

    static let runHeader = ["mode", "seed", "world ranks", "final val PPL", "final train loss", "tokens/s", "wall s", "peak RSS per rank", "freeze check", "run folder"]

    static func verdictRows(_ r: StudyResults) -> [[String]] {
        r.verdict.map { [$0.id, $0.claim, $0.measured, $0.threshold, $0.verdict] }
    }

    static let verdictHeader = ["", "hypothesis", "measured", "threshold", "verdict"]

    /// Per mode, the validation perplexity at each evaluated step, averaged over seeds.
    static func meanCurves(_ r: StudyResults) -> [(QKFreezeMode, [(step: Int, value: Double)])] {
        r.summaries.map { s in
            let runs = r.groups.filter { $0.mode == s.mode }
            let steps = Set(runs.flatMap { $0.validationPerplexity.map(\.step) }).sorted()
            let curve = steps.compactMap { step -> (Int, Double)? in
                let values = runs.compactMap { run in run.validationPerplexity.first { $0.step == step }?.value }
                return values.isEmpty ? nil : (step, values.reduce(0, +) / Double(values.count))
            }
            return (s.mode, curve)
        }
    }

    static let notes = [
        "Final train loss is the mean over the last tenth of the steps; tokens/s is the median of the per-step rates of steps 2…n (step 1 allocates buffers; the median also ignores the tail of a wave, where a group still running has the machine to itself).",
        "Peak RSS is VmHWM from /proc/self/status, lowered to the resident size when each run starts; when runs follow one another in a process, memory an earlier run freed but the allocator kept still counts.",
        "Groups that run side by side share the machine equally; tokens/s compares within the same plan only.",
        "The freeze check compares every intended-frozen tensor bit for bit before and after training, and flags any trainable tensor that never moved (the seed's \"frozen\" model was not frozen).",
    ]

    // MARK: Markdown

    public static func markdown(_ r: StudyResults) -> String {
        func table(_ header: [String], _ rows: [[String]]) -> String {
            func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |" }
            return ([line(header), line(header.map { _ in "---" })] + rows.map(line)).joined(separator: "\n")
        }
        var out = "# Q/K freeze study\n\n"
        if let command = r.command { out += "Command: `\(command)`\n\n" }
        out += "- Model: \(r.study.model)\n- Training: \(r.study.training)\n- Data: \(r.study.data)\n"
        out += "- Plan: \(r.plan.summary); seeds \(r.study.seeds.map(String.init).joined(separator: ", ")); "
            + "orthogonal Q/K \(r.study.qkInit), gain \(r.study.gain)\n"
        out += "- \(targetLine(r))\n\n"
        out += "## Verdict\n\n" + table(verdictHeader, verdictRows(r)) + "\n\n"
        let seeds = r.study.seeds.count
        out += "## Groups\(seeds > 1 ? " (mean ± standard deviation over \(seeds) seeds)" : "")\n\n" + table(modeHeader, modeRows(r)) + "\n\n"
        out += "## Runs\n\n" + table(runHeader, runRows(r)) + "\n\n"
        let curves = meanCurves(r)
        let steps = Set(curves.flatMap { $0.1.map(\.step) }).sorted()
        if !steps.isEmpty {
            out += "## Validation perplexity\(seeds > 1 ? " (mean over seeds)" : "")\n\n"
            let rows = steps.map { step in
                [String(step)] + curves.map { _, c in c.first { $0.step == step }.map { String(format: "%.3f", $0.value) } ?? "" }
            }
            out += table(["step"] + curves.map(\.0.rawValue), rows) + "\n\n"
        }
        out += "## Notes\n\n" + notes.map { "- \($0)" }.joined(separator: "\n") + "\n"
        return out
    }
}
