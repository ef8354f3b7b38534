import Foundation
import SubspaceAnalysis
import SubspaceCore

/// Writes the study's `results.json`, `report.md`, a self-contained `report.html` and its SVG plots.
public enum LoRAXStudyReport {
    public static func write(_ r: LoRAXStudyResults, to folder: String, command: String? = nil) throws -> [String] {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(Array(try encoder.encode(r)) + Array("\n".utf8), to: path("results.json"))
        let plots = [("exact_match.svg", chart(r, loss: false).render()), ("val_loss.svg", chart(r, loss: true).render())]
        for (name, svg) in plots { try AtomicFile.write(Array(svg.xml.utf8), to: path(name)) }
        try AtomicFile.write(Array(markdown(r, plots: plots.map(\.0)).utf8), to: path("report.md"))
        // The first seed's transfer similarity plots, inlined.
        var transferPlots: [String] = []
        for name in ["transfer-b1-transferred-s", "transfer-grown-s", "transfer-grown-forced-s", "transfer-control-s"] {
            let seed = r.arms.first?.seed ?? 1
            if let svg = try? String(contentsOfFile: path("\(name)\(seed)/similarity_u.svg"), encoding: .utf8) { transferPlots.append(svg) }
        }
        try AtomicFile.write(Array(html(r, plots: plots.map(\.1), transferPlots: transferPlots).utf8), to: path("report.html"))
        try StudyFinding(study: "lora-x", title: "LoRA-X: training-free adapter transfer to a related, a wider and an unrelated base",
                         report: "report.html", finding: finding(r), command: command).write(to: folder)
        return ["results.json", "report.md", "report.html", "finding.json"].map(path) + plots.map { path($0.0) }
    }

    static func chart(_ r: LoRAXStudyResults, loss: Bool) -> BarChart {
        var chart = BarChart(title: loss ? "SFT test loss by adapter (mean over seeds)" : "SFT exact match by adapter (mean over seeds)",
                             xLabel: "base · adapter", yLabel: loss ? "validation loss" : "exact match")
        chart.categories = r.summaries.map { "\($0.base) · \($0.arm)" }
        chart.series = [BarChart.Series(label: loss ? "val loss" : "exact match", color: Palette.color(loss ? 1 : 0),
                                        values: r.summaries.map { (loss ? $0.valLoss : $0.exactMatch)?.mean })]
        if !loss { chart.yRange = 0...1 }
        return chart
    }

    public static func armTable(_ r: LoRAXStudyResults) -> MarkdownTable {
        var t = MarkdownTable(["base", "adapter", "seeds", "exact match", "val loss"])
        for s in r.summaries {
            t.add([s.base, s.arm, String(s.valLoss?.values.count ?? 0), s.exactMatch?.formatted(3) ?? "—", s.valLoss?.formatted(4) ?? "—"])
        }
        return t
    }

    public static func similarityTable(_ r: LoRAXStudyResults) -> MarkdownTable {
        var t = MarkdownTable(["pair", "k", "mean φ_U", "mean φ_V", "chance U/V", "φ/chance U/V", "‖ΔW_t‖/‖ΔW_s‖", "under the threshold"])
        for s in r.similarities {
            t.add([s.pair, s.k.map(String.init).joined(separator: ","), String(format: "%.4f", s.meanPhiU), String(format: "%.4f", s.meanPhiV),
                   String(format: "%.4f / %.4f", s.meanChanceU, s.meanChanceV), String(format: "%.2f / %.2f", s.meanRatioU, s.meanRatioV),
                   s.meanNormRatio.map { String(format: "%.3f", $0) } ?? "—",
                   s.refusal ?? "\(s.defaultThresholdTransferred) of \(s.mapped) transferred"])
        }
        return t
    }

    public static func verdictTable(_ r: LoRAXStudyResults) -> MarkdownTable {
        var t = MarkdownTable(["claim", "metric", "difference", "t (Welch)", "p", "verdict"])
        for v in r.verdicts {
            t.add([v.claim, v.metric, String(format: "%+.4f", v.comparison.difference), String(format: "%.2f", v.comparison.t), v.comparison.pCell, v.comparison.verdict.rawValue])
        }
        return t
    }

    /// One line for the index: each target's transfer against no adapter and the ceiling, in words.
    public static func finding(_ r: LoRAXStudyResults) -> String {
        func loss(_ base: String, _ arm: String) -> Statistic? { r.summaries.first { $0.base == base && $0.arm == arm }?.valLoss }
        func words(_ v: SeedComparison.Verdict, better: String, worse: String) -> String {
            v == .lower ? better : v == .higher ? worse : v == .tooFewSeeds ? "too few seeds" : "not distinguishable"
        }
        func part(_ label: String, _ base: String, _ arms: [String], copy: String? = nil) -> String? {
            guard let arm = arms.first(where: { loss(base, $0) != nil }), let t = loss(base, arm), let none = loss(base, "none") else { return nil }
            let n = t.values.count
            var s = "\(label): transferred \(t.formatted(3)) vs none \(String(format: "%.3f", none.mean))"
            s += " (" + words(SeedComparison(t, none).verdict, better: "helps", worse: "hurts")
            // Against the plain copy (unchanged, or grown with the model): whether the projection adds anything.
            if let copy, let copied = loss(base, copy) {
                s += "; vs \(copy) \(copied.formatted(3)): " + words(SeedComparison(t, copied).verdict, better: "better", worse: "worse")
            }
            if let d = loss(base, "direct") { s += String(format: "; trained directly %.3f", d.mean) }
            return s + ", \(n) seeds)"
        }
        let parts = [part("related B1", "b1", ["transferred"], copy: "copied"),
                     part("grown (other width)", "grown", ["transferred"], copy: "copied (grown)"),
                     part("grown, forced (threshold 0)", "grown", ["transferred (threshold 0)"], copy: "copied (grown)"),
                     part("unrelated control, forced", "control", ["transferred (threshold 0)"])].compactMap { $0 }
            // The extra-k arms (study.subspace_ranks): whether a larger subspace closes the gap to the copy.
            + r.summaries.filter { $0.base == "b1" && $0.arm.hasPrefix("transferred-k") }.compactMap { a -> String? in
                guard let t = a.valLoss, let copied = loss("b1", "copied") else { return nil }
                return "related B1 at k = \(a.arm.dropFirst("transferred-k".count)): \(t.formatted(3)) vs copied: "
                    + words(SeedComparison(t, copied).verdict, better: "better", worse: "worse")
            }
        return "SFT val loss — " + (parts.isEmpty ? "no arm scored" : parts.joined(separator: "; "))
    }

    static let widthExplanation = """
        Different width (when study.grown_width is set): B0 is grown to the wider width by appending units \
        (function-preserving: the grown model computes B0's function before training; new residual coordinates \
        carry the old mean for LayerNorm, new readers' weights are noise, new output columns zero), then trained \
        further on the corpus like B1. The adapter is carried by LoRA-X's least-squares map between the singular \
        bases (target-shaped rank-r factors) and scored against no adapter, a LoRA trained on the grown base, and \
        the plain copy across widths, "copied (grown)": the B0 adapter grown by the weights' own rule (new input \
        columns zero; new output rows zero, or a writer's column means under LayerNorm), which on the grown model \
        before training computes exactly what B0 with the adapter computes.
        """

    static let explanation = """
        B0 is pretrained on the corpus; B1 is B0 trained further on the corpus with another seed (other batches): \
        the related pair. The control is pretrained like B0 from another seed: unrelated. Per seed, a LoRA trained \
        on B0 for the SFT task is carried to B1 by LoRA-X (no training) and scored on the SFT test set against no \
        adapter, the same adapter copied unchanged, and a LoRA trained on B1 directly (the ceiling). On the control \
        the threshold refuses the transfer (similarity at chance), so it is forced with threshold 0 to see whether \
        it helps anyway (it should not, or far less than on B1). Verdicts: Welch's two-sided t-test over seeds, p < 0.05, else "not distinguishable".
        """

    static func markdown(_ r: LoRAXStudyResults, plots: [String]) -> String {
        var md = "# LoRA-X study\n\n" + explanation + "\n\n" + widthExplanation + "\n\n"
        md += String(format: "%d ranks, %.0f s.\n\n", r.worldSize, r.wallSeconds)
        md += "## Subspace similarity of the base pairs\n\n" + similarityTable(r).markdown + "\n"
        md += "## Scores on the SFT test set\n\n" + armTable(r).markdown + "\n"
        md += plots.map { "![\($0)](\($0))\n\n" }.joined()
        md += "## Verdicts\n\n" + verdictTable(r).markdown + "\n"
        md += "## Configuration\n\n```yaml\n" + r.config + "```\n"
        return md
    }

    static func html(_ r: LoRAXStudyResults, plots: [SVGDocument], transferPlots: [String]) -> String {
        var h = HTMLPage.head(title: "Subspace: LoRA-X study") + "<h1>LoRA-X study</h1>\n"
        h += "<p>\(escapeXML(explanation))</p>\n<p>\(escapeXML(widthExplanation))</p>\n"
        h += "<h2>Subspace similarity of the base pairs</h2>\n" + similarityTable(r).html
        for svg in transferPlots {
            // Inline the SVG element without its XML declaration.
            let element = svg.components(separatedBy: "?>").dropFirst().joined(separator: "?>")
            h += "<figure>\n\(element.isEmpty ? svg : element)\n</figure>\n"
        }
        h += "<h2>Scores on the SFT test set</h2>\n" + armTable(r).html
        for svg in plots { h += "<figure>\n\(svg.element)\n</figure>\n" }
        h += "<h2>Verdicts</h2>\n" + verdictTable(r).html
        h += "<h2>Configuration</h2>\n<pre>\(escapeXML(r.config))</pre>\n"
        return h + HTMLPage.end
    }
}
