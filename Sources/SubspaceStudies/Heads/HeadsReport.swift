import Foundation
import SubspaceAnalysis

/// The heads study's files: per-head tables (heads.csv, heads.jsonl), results.json (every measurement),
/// stats.json (the statistics), report.md and a self-contained report.html with SVG figures.
public enum HeadsReport {
    static let columns = ["seed", "method", "layer", "head", "i_pre_ablation", "i_pre_taylor", "i_pre_fisher",
                          "plasticity_gradient", "plasticity_fisher", "i_post_ablation", "i_post_taylor", "i_post_fisher",
                          "u_abs", "u_rel", "u_q", "u_k", "u_v", "u_o"]

    /// One row per (seed, method, layer, head).
    static func rows(_ r: HeadsResults) -> [[String: Any]] {
        var rows: [[String: Any]] = []
        for s in r.seeds {
            for (name, m) in [("fft", s.fft), ("lora", s.lora)] {
                for l in 0..<r.layers {
                    for h in 0..<r.heads {
                        rows.append([
                            "seed": Int(s.seed), "method": name, "layer": l, "head": h,
                            "i_pre_ablation": r.before.ablation?[l][h] ?? Double.nan, "i_pre_taylor": r.before.taylor[l][h],
                            "i_pre_fisher": r.before.fisher[l][h], "plasticity_gradient": r.plasticity.gradient[l][h],
                            "plasticity_fisher": r.plasticity.fisher[l][h],
                            "i_post_ablation": m.after.ablation?[l][h] ?? Double.nan, "i_post_taylor": m.after.taylor[l][h],
                            "i_post_fisher": m.after.fisher[l][h], "u_abs": m.update.absolute[l][h], "u_rel": m.update.relative[l][h],
                            "u_q": m.update.q[l][h], "u_k": m.update.k[l][h], "u_v": m.update.v[l][h], "u_o": m.update.o[l][h],
                        ])
                    }
                }
            }
        }
        return rows
    }

    static func cell(_ v: Any?) -> String {
        switch v {
        case let d as Double: return d.isNaN ? "" : String(format: "%.9g", d)
        case let i as Int: return String(i)
        case let s as String: return s
        default: return ""
        }
    }

    public static func write(_ r: HeadsResults, config: HeadsStudyConfig) throws -> [String] {
        let folder = config.output
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let table = rows(r)
        var csv = columns.joined(separator: ",") + "\n"
        var jsonl = ""
        for row in table {
            csv += columns.map { cell(row[$0]) }.joined(separator: ",") + "\n"
            let clean = row.mapValues { v -> Any in (v as? Double).map { $0.isNaN ? NSNull() : $0 as Any } ?? v }
            jsonl += String(decoding: try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try csv.write(toFile: path("heads.csv"), atomically: true, encoding: .utf8)
        try jsonl.write(toFile: path("heads.jsonl"), atomically: true, encoding: .utf8)
        try HeadImportanceFile.write(r, to: path("results.json"))
        if let s = r.statistics { try HeadImportanceFile.write(s, to: path("stats.json")) }
        try markdown(r).write(toFile: path("report.md"), atomically: true, encoding: .utf8)
        try html(r).write(toFile: path("report.html"), atomically: true, encoding: .utf8)
        try StudyFinding(study: "heads", title: "Attention heads under fine-tuning: importance, plasticity and update, FFT vs LoRA",
                         report: "report.html", finding: finding(r), command: r.command).write(to: folder)
        return ["heads.csv", "heads.jsonl", "results.json", "stats.json", "report.md", "report.html", "finding.json"].map(path)
    }

    // MARK: Text

    static func aggregateRows(_ r: HeadsResults) -> [[String]] {
        (r.statistics?.aggregates ?? []).map { a in
            [a.method, "\(a.x) vs \(a.y)", a.what, a.value.formatted(3), a.fraction == nil ? "0" : String(format: "%.3f", a.chance),
             a.pValues.map { String(format: "%.3f", $0) }.joined(separator: " "), a.verdict]
        }
    }
    static let aggregateHeader = ["method", "pair", "statistic", "mean ± std over seeds (base: one value)", "chance", "p per seed (base: one)", "verdict"]

    static func counterRows(_ r: HeadsResults) -> [[String]] {
        var out: [[String]] = []
        for s in r.statistics?.seeds ?? [] {
            for method in ["FFT", "LoRA"] {
                for e in s.counterExamples[method] ?? [] {
                    out.append([String(s.seed), method, e.kind, "L\(e.layer) H\(e.head)", String(format: "%.4g", e.importanceBefore),
                                String(format: "%.4g", e.plasticity), e.updateRelative.map { String(format: "%.4g", $0) } ?? "—"])
                }
            }
        }
        // 'plastic but unimportant' compares two measurements of the base: found once, not per seed or method.
        for e in r.statistics?.baseCounterExamples ?? [] {
            out.append(["—", HeadsStatistics.baseMethod, e.kind, "L\(e.layer) H\(e.head)", String(format: "%.4g", e.importanceBefore),
                        String(format: "%.4g", e.plasticity), "—"])
        }
        return out
    }
    static let counterHeader = ["seed", "method", "kind", "head", "I_pre", "P", "U_rel"]

    static func runRows(_ r: HeadsResults) -> [[String]] {
        r.seeds.map { s in
            [String(s.seed), String(format: "%.4f", s.fft.finalValidationLoss), String(format: "%.4f", s.lora.finalValidationLoss),
             String(format: "%.4f", s.fft.after.loss), String(format: "%.4f", s.lora.after.loss),
             String(format: "%.3g", mean(flat(s.fft.update.relative))), String(format: "%.3g", mean(flat(s.lora.update.relative)))]
        }
    }
    /// Every learning rate each method's sweep tried: final validation loss over the seeds it was trained
    /// with (the chosen rate: every seed), and whether the sweep bracketed its optimum.
    static func sweepRows(_ r: HeadsResults) -> [[String]] {
        var rows: [[String]] = []
        for sw in r.sweeps ?? [] {
            let method = sw.method == "fft" ? "FFT" : "LoRA"
            for p in sw.points {
                let chosen = p.learningRate == sw.bestLearningRate
                let first: String = p.score?.values.first.map { String(format: "%.4f", $0) } ?? "–"
                let all: String = p.score?.formatted(4) ?? "–"
                let seeds: String = String(p.seeds.count) + (p.diverged > 0 ? " (\(p.diverged) diverged)" : "")
                let optimum: String = chosen ? (sw.bracketed ? "bracketed" : "NOT bracketed") + " — " + sw.note : ""
                rows.append([method, String(format: "%.3g", p.learningRate), first, all, seeds, chosen ? "chosen" : "", optimum])
            }
        }
        return rows
    }
    static let sweepHeader = ["method", "learning rate", "first seed's val loss (the choice)", "final val loss (mean ± std)", "seeds", "", "optimum"]

    /// One line for the index page: the chosen rates and how many statistics stand out from chance.
    static func finding(_ r: HeadsResults) -> String {
        let rates = (r.sweeps ?? []).map { sw in
            "\(sw.method == "fft" ? "FFT" : "LoRA") lr \(String(format: "%.3g", sw.bestLearningRate))\(sw.bracketed ? "" : " (not bracketed)")"
        }
        // Statistics of trained models are replicated over seeds; those of the base alone (I_pre vs P) are one
        // measurement each and are reported as such, never counted among the replicated ones.
        let all = r.statistics?.aggregates ?? []
        let replicated = all.filter { $0.method != HeadsStatistics.baseMethod }
        let base = all.filter { $0.method == HeadsStatistics.baseMethod }
        let distinct = replicated.filter(\.distinguishable)
        let what = distinct.prefix(3).map { a in "\(a.method) \(a.x) vs \(a.y) \(a.what) \(a.value.formatted(2))" }
        let baseSpearman = base.first { $0.what == "spearman" }.map { a in
            "; base \(a.x) vs \(a.y) spearman \(a.value.formatted(2)) (p = \(a.pValues.map { String(format: "%.3f", $0) }.joined()), one measurement of the base)"
        } ?? ""
        return "\(distinct.count) of \(replicated.count) head statistics of the trained models distinguishable from chance over \(r.seeds.count) seeds"
            + (what.isEmpty ? "" : " (" + what.joined(separator: "; ") + ")") + baseSpearman
            + (rates.isEmpty ? "" : "; each method at its own swept rate: " + rates.joined(separator: ", "))
    }

    static let runHeader = ["seed", "FFT val loss", "LoRA val loss", "FFT eval loss", "LoRA eval loss", "FFT mean U_rel", "LoRA mean U_rel"]

    static func flat(_ g: [[Double]]) -> [Double] { g.flatMap { $0 } }
    static func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }

    static var definitions: [String] {
        [
            "I_pre / I_post: ablation importance on the fixed evaluation set — mean token loss with the head's gate at 0 minus the loss with all gates 1 — of the base / of the tuned model.",
            "P (plasticity): mean over training sequences of (∂L_seq/∂ξ)² at the base (Fisher of the head gate).",
            "U_rel: ‖ΔW‖_F over the head's rows of W_Q, W_K, W_V (its key/value head under grouped-query attention) and columns of W_O, divided by the same norm of W; LoRA's ΔW is scale·B·A merged in double precision.",
            "Spearman ρ with average ranks; p: two-sided permutation test of |ρ|. Top-K overlap: |top-K(x) ∩ top-K(y)| / K, chance K/(L·H); p: one-sided permutation test.",
            "Verdict: 'distinguishable from chance' only when every seed's p-value is below \(HeadsStatistics.alpha); otherwise 'not distinguishable from chance'.",
            "Method 'base': I_pre and P are both measured on the base model, the same for every seed and both methods, so their statistics (and the 'plastic but unimportant' heads) are one measurement with one p-value — not replicated by the seeds, which vary only training.",
            "Counter-examples: 'important but static' = top \(Int(100 * 0.2))% by I_pre and bottom 50% by U_rel; 'plastic but unimportant' = top 20% by P and bottom 50% by I_pre (fractions from the config).",
            "What this cannot show: one small model, one task and a short training run; heads of one layer share a residual stream, so single-head ablations miss interactions; grouped-query heads share K/V updates; p-values are per statistic, not corrected for the number of tests.",
        ]
    }

    static func markdown(_ r: HeadsResults) -> String {
        func table(_ header: [String], _ rows: [[String]]) -> String {
            "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in " --- |" }.joined() + "\n"
                + rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
        }
        var md = "# Heads study: importance, plasticity and update, FFT vs LoRA\n\n"
        md += "Command: `\(r.command)`\n\n"
        md += "Base: `\(r.base)` (\(r.family), \(r.layers) layers × \(r.heads) heads, \(r.keyValueHeads) key/value heads); "
        md += "seeds \(r.seeds.map { String($0.seed) }.joined(separator: ", ")); evaluation set \(r.evaluationSequences) sequences; "
        md += "plasticity over \(r.plasticitySequences) training sequences; base eval loss \(String(format: "%.4f", r.before.loss)); "
        md += "measurements \(String(format: "%.1f", r.measureSeconds)) s on \(r.worldSize) rank(s).\n\n"
        md += "## Learning-rate sweeps\n\nEach method's own log-spaced grid, extended one step past an edge while the best sits there; "
        md += "each rate trained with the first seed, the best (lowest final validation loss on that seed) then with every seed — the runs measured below. "
        md += "The chosen rate's mean over all seeds can read higher than another rate's single first-seed value: compare the first-seed column.\n\n"
        md += table(sweepHeader, sweepRows(r)) + "\n"
        md += "## Runs\n\n" + table(runHeader, runRows(r)) + "\n"
        md += "## Statistics over seeds\n\n" + table(aggregateHeader, aggregateRows(r)) + "\n"
        md += "## Counter-examples\n\n" + table(counterHeader, counterRows(r)) + "\n"
        md += "## Definitions and limits\n\n" + definitions.map { "- \($0)" }.joined(separator: "\n") + "\n"
        return md
    }

    // MARK: HTML and figures

    static func escape(_ s: String) -> String { escapeXML(s) }

    static func html(_ r: HeadsResults) -> String {
        func table(_ header: [String], _ rows: [[String]], verdictColumn: Int? = nil) -> String {
            var out = "<table><thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
            for row in rows {
                out += "<tr>" + row.enumerated().map { i, cell in
                    let cls = i == verdictColumn ? " class=\"\(cell.hasPrefix("not") ? "na" : "pass")\"" : ""
                    return "<td\(cls)>\(escape(cell))</td>"
                }.joined() + "</tr>\n"
            }
            return out + "</tbody></table>\n"
        }
        var body = "<h1>Heads study: importance, plasticity and update, FFT vs LoRA</h1>\n"
        body += "<p><code>\(escape(r.command))</code></p>\n"
        body += "<p>Base <code>\(escape(r.base))</code>: \(r.family), \(r.layers) layers × \(r.heads) heads (\(r.keyValueHeads) key/value heads); seeds "
        body += r.seeds.map { String($0.seed) }.joined(separator: ", ") + "; evaluation set \(r.evaluationSequences) sequences; plasticity over \(r.plasticitySequences) training sequences.</p>\n"
        body += "<h2>Learning-rate sweeps</h2>\n<p>Each method's own log-spaced grid, extended one step past an edge while the best sits there; "
        body += "each rate trained with the first seed, the best (lowest final validation loss on that seed) then with every seed — the runs measured below. "
        body += "The chosen rate's mean over all seeds can read higher than another rate's single first-seed value: compare the first-seed column.</p>\n"
        body += table(sweepHeader, sweepRows(r))
        body += "<h2>Runs</h2>\n" + table(runHeader, runRows(r))
        body += "<h2>Statistics over seeds</h2>\n" + table(aggregateHeader, aggregateRows(r), verdictColumn: 6)
        body += "<h2>Figures</h2>\n<div class=\"plots\">\n" + figures(r).joined(separator: "\n") + "</div>\n"
        body += "<h2>Counter-examples</h2>\n" + table(counterHeader, counterRows(r))
        body += "<h2>Definitions and limits</h2>\n<ul>" + definitions.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        return HTMLPage.document(title: "Heads study", body: body)
    }

    /// Seed means of a per-head quantity.
    static func seedMean(_ r: HeadsResults, _ pick: (HeadsResults.Seed) -> [[Double]]) -> [[Double]] {
        let grids = r.seeds.map(pick)
        return (0..<r.layers).map { l in (0..<r.heads).map { h in mean(grids.map { $0[l][h] }) } }
    }

    static func figures(_ r: HeadsResults) -> [String] {
        var out: [String] = []
        let iPre = flat(r.before.ablation ?? r.before.taylor)
        // Importance vs update, every seed's heads, both methods.
        var scatter = LineChart(title: "Importance (before) vs relative update", xLabel: "I_pre (ablation Δloss)", yLabel: "U_rel")
        scatter.logY = true
        for (i, (name, pick)) in [("FFT", { (s: HeadsResults.Seed) in s.fft }), ("LoRA", { (s: HeadsResults.Seed) in s.lora })].enumerated() {
            let points = r.seeds.flatMap { s in zip(iPre, flat(pick(s).update.relative)).filter { $0.1 > 0 }.map { (x: $0.0, y: $0.1) } }
            scatter.series.append(.init(label: name, color: Palette.color(i), points: points, width: 0, markers: true))
        }
        out.append(scatter.render().element)
        var plastic = LineChart(title: "Plasticity (before) vs relative update", xLabel: "P (gate Fisher, log)", yLabel: "U_rel")
        plastic.logY = true
        plastic.logX = true
        let p = flat(r.plasticity.fisher)
        for (i, (name, pick)) in [("FFT", { (s: HeadsResults.Seed) in s.fft }), ("LoRA", { (s: HeadsResults.Seed) in s.lora })].enumerated() {
            let points = r.seeds.flatMap { s in zip(p, flat(pick(s).update.relative)).filter { $0.0 > 0 && $0.1 > 0 }.map { (x: $0.0, y: $0.1) } }
            plastic.series.append(.init(label: name, color: Palette.color(i), points: points, width: 0, markers: true))
        }
        out.append(plastic.render().element)
        // Layer × head heatmaps.
        func heatmap(_ title: String, _ grid: [[Double]], _ label: String) -> String {
            var map = Heatmap(title: title, xLabel: "head", yLabel: "layer", valueLabel: label)
            map.rowLabels = (0..<r.layers).map { "layer \($0)" }
            map.columnLabels = (0..<r.heads).map { "h\($0)" }
            map.values = grid.map { $0.map { Optional($0) } }
            let all = grid.flatMap { $0 }.filter(\.isFinite)
            if let lo = all.min(), let hi = all.max() { map.range = lo...(hi > lo ? hi : lo + 1) }
            map.showValues = false
            return map.render().element
        }
        out.append(heatmap("I_pre (ablation)", r.before.ablation ?? r.before.taylor, "Δloss"))
        out.append(heatmap("Plasticity P (gate Fisher)", r.plasticity.fisher, "P"))
        out.append(heatmap("U_rel FFT (seed mean)", seedMean(r) { $0.fft.update.relative }, "U_rel"))
        out.append(heatmap("U_rel LoRA (seed mean)", seedMean(r) { $0.lora.update.relative }, "U_rel"))
        out.append(heatmap("I_post FFT (seed mean)", seedMean(r) { $0.fft.after.ablation ?? $0.fft.after.taylor }, "Δloss"))
        out.append(heatmap("I_post LoRA (seed mean)", seedMean(r) { $0.lora.after.ablation ?? $0.lora.after.taylor }, "Δloss"))
        // Update distributions: histogram of log10 U_rel, pooled over seeds.
        let fftU = r.seeds.flatMap { flat($0.fft.update.relative) }.filter { $0 > 0 }.map(log10)
        let loraU = r.seeds.flatMap { flat($0.lora.update.relative) }.filter { $0 > 0 }.map(log10)
        if let lo = (fftU + loraU).min(), let hi = (fftU + loraU).max() {
            let bins = 16, width = max((hi - lo) / Double(bins), 1e-9)
            func histogram(_ v: [Double]) -> [Double?] {
                var counts = [Double](repeating: 0, count: bins)
                for x in v { counts[min(bins - 1, Int((x - lo) / width))] += 1 }
                return counts.map { Optional($0 / Double(max(v.count, 1))) }
            }
            var chart = BarChart(title: "Distribution of per-head U_rel (all seeds)", xLabel: "log10 U_rel (bin start)", yLabel: "fraction of heads")
            chart.categories = (0..<bins).map { String(format: "%.2f", lo + Double($0) * width) }
            chart.series = [.init(label: "FFT", color: Palette.color(0), values: histogram(fftU)),
                            .init(label: "LoRA", color: Palette.color(1), values: histogram(loraU))]
            out.append(chart.render().element)
        }
        // Head-wise FFT vs LoRA.
        var headwise = LineChart(title: "Head-wise: FFT vs LoRA (seed means)", xLabel: "FFT", yLabel: "LoRA")
        let uF = flat(seedMean(r) { $0.fft.update.relative }), uL = flat(seedMean(r) { $0.lora.update.relative })
        let uMax = max(uF.max() ?? 1, 1e-12), uLMax = max(uL.max() ?? 1, 1e-12)
        headwise.series.append(.init(label: "U_rel / max", color: Palette.color(2),
                                     points: zip(uF, uL).map { (x: $0.0 / uMax, y: $0.1 / uLMax) }, width: 0, markers: true))
        let iF = flat(seedMean(r) { $0.fft.after.ablation ?? $0.fft.after.taylor }), iL = flat(seedMean(r) { $0.lora.after.ablation ?? $0.lora.after.taylor })
        let iMax = max(iF.map(abs).max() ?? 1, 1e-12), iLMax = max(iL.map(abs).max() ?? 1, 1e-12)
        headwise.series.append(.init(label: "I_post / max", color: Palette.color(3),
                                     points: zip(iF, iL).map { (x: $0.0 / iMax, y: $0.1 / iLMax) }, width: 0, markers: true))
        out.append(headwise.render().element)
        return out
    }
}
