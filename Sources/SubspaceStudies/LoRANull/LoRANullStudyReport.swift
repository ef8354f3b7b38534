import Foundation
import SubspaceCore
import SubspaceAnalysis

/// results.json, report.md and report.html (with the trade-off plot) of the knowledge-preservation study.
public enum LoRANullStudyReport {
    static func stat(_ s: Statistic?, _ digits: Int = 4) -> String { s?.formatted(digits) ?? "–" }

    /// Plain sentences, including when LoRA-Null does not help.
    public static func findings(_ r: LoRANullStudy.Results) -> [String] {
        var out: [String] = []
        let byName = Dictionary(uniqueKeysWithValues: r.methods.map { ($0.method, $0) })
        for m in r.methods where !m.sweep.bracketed {
            out.append("\(m.method): the best learning rate \(String(format: "%.3g", m.sweep.bestLearningRate)) is not bracketed (\(m.sweep.note)); its figures may understate the method.")
        }
        for c in r.comparisons where c.against == "lora" {
            guard let f = c.forgetting, let t = c.taskLoss else { continue }
            let forgetting: String
            switch f.verdict {
            case .lower: forgetting = "forgets less than LoRA (Δ corpus loss \(String(format: "%+.4f", f.difference)), \(f.testSummary))"
            case .higher: forgetting = "forgets more than LoRA (Δ \(String(format: "%+.4f", f.difference)), \(f.testSummary))"
            case .notDistinguishable: forgetting = "forgets as much as LoRA within the seed noise (Δ \(String(format: "%+.4f", f.difference)), \(f.testSummary))"
            case .tooFewSeeds: forgetting = "cannot be compared with LoRA on forgetting (fewer than 2 seeds)"
            }
            let task: String
            switch t.verdict {
            case .lower: task = "reaches a lower task loss"
            case .higher: task = "reaches a higher (worse) task loss"
            case .notDistinguishable: task = "reaches the same task loss within the noise"
            case .tooFewSeeds: task = "has too few seeds for a task-loss comparison"
            }
            out.append("LoRA-Null \(c.method) \(forgetting), and \(task) (Δ \(String(format: "%+.4f", t.difference))).")
        }
        let helps = r.comparisons.contains { $0.against == "lora" && $0.forgetting?.verdict == .lower && $0.taskLoss?.verdict != .higher }
        if !r.comparisons.filter({ $0.against == "lora" }).isEmpty {
            out.append(helps ? "At this scale at least one LoRA-Null variant preserves the base's knowledge better than LoRA without a worse task loss."
                : "At this scale no LoRA-Null variant preserves knowledge measurably better than random-init LoRA at equal task quality: the method does not help here.")
        }
        if let full = byName["full"], let lora = byName["lora"], let ff = full.forgetting, let lf = lora.forgetting {
            out.append("Full fine-tuning forgets \(ff.formatted(4)) vs LoRA \(lf.formatted(4)) (corpus loss increase over the base's \(String(format: "%.4f", r.baseCorpusLoss))).")
        }
        return out
    }

    static let header = ["method", "best lr", "bracketed", "task val loss", "exact match", "corpus loss", "forgetting (Δ corpus loss)"]
    static func rows(_ r: LoRANullStudy.Results) -> [[String]] {
        r.methods.map { m in
            [m.method, String(format: "%.3g", m.sweep.bestLearningRate), m.sweep.bracketed ? "yes" : "no", stat(m.taskLoss),
             stat(m.exactMatch, 3), stat(m.corpusLoss), stat(m.forgetting)]
        }
    }
    static let comparisonHeader = ["method", "vs", "forgetting Δ", "t", "p", "verdict", "task loss Δ", "t", "p", "verdict"]
    static func comparisonRows(_ r: LoRANullStudy.Results) -> [[String]] {
        r.comparisons.map { c in
            [c.method, c.against, c.forgetting.map { String(format: "%+.4f", $0.difference) } ?? "–", c.forgetting.map { String(format: "%.1f", $0.t) } ?? "–",
             c.forgetting?.pCell ?? "–", c.forgetting?.verdict.rawValue ?? "–", c.taskLoss.map { String(format: "%+.4f", $0.difference) } ?? "–",
             c.taskLoss.map { String(format: "%.1f", $0.t) } ?? "–", c.taskLoss?.pCell ?? "–", c.taskLoss?.verdict.rawValue ?? "–"]
        }
    }

    static func sweepRows(_ r: LoRANullStudy.Results) -> [[String]] {
        r.methods.flatMap { m in m.sweep.points.map { p in [m.method, String(format: "%.3g", p.learningRate), stat(p.score), "\(p.diverged)"] } }
    }

    public static func tradeOffPlot(_ r: LoRANullStudy.Results) -> String {
        var chart = LineChart(title: "Task quality vs forgetting (mean and seeds)", xLabel: "forgetting: held-out corpus loss − base's", yLabel: "SFT validation loss")
        for (i, m) in r.methods.enumerated() {
            guard let f = m.forgetting, let t = m.taskLoss else { continue }
            chart.series.append(.init(label: m.method, color: Palette.color(i), points: [(f.mean, t.mean)], width: 0, markers: true))
            let seeds = zip(f.values, t.values).map { (x: $0, y: $1) }
            chart.series.append(.init(label: m.method + " seeds", color: Palette.color(i), points: seeds, width: 0, opacity: 0.4, markers: true, inLegend: false))
        }
        chart.notes = ["lower-left is better: less forgetting, lower task loss", "large markers: mean over seeds; faint: each seed"]
        return chart.render().element
    }

    public static func markdown(_ r: LoRANullStudy.Results) -> String {
        func table(_ h: [String], _ rows: [[String]]) -> String { VerificationReport.mdTable(h, rows) }
        var s = "# LoRA-Null knowledge-preservation study\n\n"
        if let c = r.command { s += "`\(c)`\n\n" }
        s += "- Base: `\(r.base)`, held-out corpus loss \(String(format: "%.4f", r.baseCorpusLoss))\n"
        s += "- Same rank r = \(r.rank), alpha \(r.alpha), \(r.steps) steps for every method; seeds \(r.seeds.map(String.init).joined(separator: ", ")); covariance \(r.covariance)\n"
        s += "- Forgetting = held-out corpus loss of the fine-tuned model − the base's; task = SFT validation loss at the end (the sweep's score) and exact match.\n\n"
        s += "## Findings\n\n" + r.findings.map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        s += "## Methods (mean ± std over seeds at each method's best learning rate)\n\n" + table(header, rows(r)) + "\n"
        s += "## Against LoRA and full fine-tuning (Welch's t-test over seeds; p ≥ 0.05: not distinguishable)\n\n" + table(comparisonHeader, comparisonRows(r)) + "\n"
        s += "## Learning-rate sweeps\n\n" + table(["method", "lr", "task val loss", "diverged"], sweepRows(r))
        s += "\n" + r.methods.map { "- \($0.method): \($0.sweep.note)" }.joined(separator: "\n") + "\n"
        return s
    }

    public static func html(_ r: LoRANullStudy.Results) -> String {
        func esc(_ s: String) -> String { escapeXML(s) }
        func table(_ h: [String], _ rows: [[String]]) -> String {
            "<table><thead><tr>" + h.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>"
                + rows.map { "<tr>" + $0.map { "<td>\(esc($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n") + "</tbody></table>\n"
        }
        var b = "<h1>LoRA-Null knowledge-preservation study</h1>\n"
        if let c = r.command { b += "<p><code>\(esc(c))</code></p>\n" }
        b += "<p>Base \(esc(r.base)), held-out corpus loss \(String(format: "%.4f", r.baseCorpusLoss)); rank \(r.rank), alpha \(r.alpha), \(r.steps) steps per run; seeds \(r.seeds.map(String.init).joined(separator: ", ")).</p>\n"
        b += "<h2>Findings</h2><ul>" + r.findings.map { "<li>\(esc($0))</li>" }.joined() + "</ul>\n"
        b += "<h2>Trade-off</h2>\n" + tradeOffPlot(r)
        b += "<h2>Methods</h2>\n" + table(header, rows(r))
        b += "<h2>Comparisons</h2>\n" + table(comparisonHeader, comparisonRows(r))
        b += "<h2>Learning-rate sweeps</h2>\n" + table(["method", "lr", "task val loss", "diverged"], sweepRows(r))
        return HTMLPage.document(title: "LoRA-Null study", body: b)
    }

    public static func write(_ r: LoRANullStudy.Results, to folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(r)), to: (folder as NSString).appendingPathComponent("results.json"))
        try AtomicFile.write(Array(markdown(r).utf8), to: (folder as NSString).appendingPathComponent("report.md"))
        try AtomicFile.write(Array(html(r).utf8), to: (folder as NSString).appendingPathComponent("report.html"))
        try StudyFinding(study: "lora-null", title: "LoRA-Null: null-space adapters against LoRA and full fine-tuning, task quality and forgetting",
                         report: "report.html", finding: finding(r), command: r.command).write(to: folder)
    }

    /// The index page's one line: each LoRA-Null variant's forgetting and task loss against LoRA, with the verdicts,
    /// and how many methods' best rates sit at a grid edge.
    static func finding(_ r: LoRANullStudy.Results) -> String {
        let parts = r.comparisons.filter { $0.against == "lora" }.map { c -> String in
            let f = c.forgetting.map { "forgetting \($0.verdict.rawValue) (Δ \(String(format: "%+.3f", $0.difference)), \($0.testSummary))" } ?? "forgetting –"
            let t = c.taskLoss.map { "task loss \($0.verdict.rawValue)" } ?? "task loss –"
            return "\(c.method): \(f), \(t)"
        }
        let edge = r.methods.filter { !$0.sweep.bracketed }.map(\.method)
        let seeds = "\(r.seeds.count) seed\(r.seeds.count == 1 ? "" : "s")"
        return "vs LoRA at equal rank and steps (\(seeds)) — " + parts.joined(separator: "; ")
            + (edge.isEmpty ? "" : "; best LR not bracketed for \(edge.joined(separator: ", "))")
    }
}
