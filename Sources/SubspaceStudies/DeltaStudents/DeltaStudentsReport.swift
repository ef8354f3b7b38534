import Foundation
import SubspaceAnalysis
import SubspaceCore
import SubspaceTraining

/// The ΔW study's report over seeds: the seed's own table (initial loss, final loss, steps to target,
/// exact match, distance to the teacher's ΔW) with mean ± std, each method's learning-rate sweep, the
/// equal-budget check, ΔW energy at rank r and ‖ΔW‖/‖W‖, the rank study, and verdicts that say "not
/// distinguishable" when a difference is inside the seeds' spread. summary.json, report.md, report.html
/// (self-contained, SVG inline) and finding.json for the index page.
enum DeltaStudentsReport {
    struct MethodRow: Codable {
        var method: String
        var learningRate: Double
        var bracketed: Bool
        var sweepNote: String
        var steps: [Int]
        var tokensPerStep: [Int]
        var initialLoss: Statistic?
        var finalTrainLoss: Statistic?
        var finalValLoss: Statistic?
        var exactMatch: Statistic?
        var stepsToTarget: Statistic?
        var reachedTarget: Int
        var distance: Statistic?
        var cosine: Statistic?
    }

    struct RankRow: Codable {
        var rank: Int
        var energy: Statistic?
        var finalValLoss: [String: Statistic]
    }

    struct Summary: Codable {
        var format = "subspace-delta-students-1"
        var command: String?
        var seeds: [UInt64]
        var budgetSteps: Int?
        var equalBudget: Bool
        var rows: [MethodRow]
        var sweeps: [SweepResult]
        var analysisRank: Int
        var energyAtRank: Statistic?
        var relativeChange: Statistic?
        var ranks: [RankRow]
        var verdicts: [String: SeedComparison]
        var finding: String
    }

    static func write(_ o: DeltaStudentsPipeline.Outcome, config p: PipelineConfig, folder: String, command: String?) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let seeds = p.seeds
        let sweeps = [o.teacherSweep] + o.studentSweeps
        func summaries(_ method: String) -> [RunSummary] {
            seeds.compactMap { seed in
                o.comparisons[seed]?.runs.first { method == "teacher" ? $0.role == "teacher" : ($0.role == "student" && $0.name == method) }
            }
        }
        // What each compared run actually trained: steps and tokens per step, from its resolved config.
        func budget(_ run: RunSummary) -> (Int, Int) {
            guard let c = try? TrainConfig.load(path: (run.folder as NSString).appendingPathComponent("config.resolved.yaml"), overrides: []) else { return (-1, -1) }
            return (c.training.steps, c.training.globalBatch * c.data.sequence)
        }
        var rows: [MethodRow] = []
        for sweep in sweeps {
            let runs = summaries(sweep.method)
            let budgets = runs.map(budget)
            rows.append(MethodRow(
                method: sweep.method, learningRate: sweep.bestLearningRate, bracketed: sweep.bracketed, sweepNote: sweep.note,
                steps: budgets.map(\.0), tokensPerStep: budgets.map(\.1),
                initialLoss: Statistic(runs.compactMap(\.initialLoss)), finalTrainLoss: Statistic(runs.compactMap(\.finalTrainLoss)),
                finalValLoss: Statistic(runs.compactMap(\.finalValLoss)), exactMatch: Statistic(runs.compactMap(\.exactMatch)),
                stepsToTarget: Statistic(runs.compactMap(\.stepsToTarget).map(Double.init)),
                reachedTarget: runs.filter { $0.stepsToTarget != nil }.count,
                distance: Statistic(runs.compactMap(\.distance)), cosine: Statistic(runs.compactMap(\.cosine))))
        }
        let allBudgets = Set(rows.flatMap { zip($0.steps, $0.tokensPerStep).map { "\($0)x\($1)" } })
        let equalBudget = allBudgets.count == 1

        // ΔW of each seed's teacher: energy at R and relative change, and the energy at each studied rank.
        let analyses = seeds.compactMap { o.analyses[$0].flatMap { try? DeltaAnalysisWriter.read(folder: $0) } }
        func meanEnergy(_ a: DeltaAnalysis, rank r: Int) -> Double? {
            let values = a.layers.compactMap { l -> Double? in
                guard l.totalEnergy > 0, l.spectrumComplete || l.singularValues.count >= r else { return nil }
                return l.singularValues.prefix(r).reduce(0.0) { $0 + Double($1) * Double($1) } / l.totalEnergy
            }
            return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
        let relChange = Statistic(analyses.compactMap { a in
            let v = a.layers.compactMap(\.relativeChange); return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        })
        let energyAtR = Statistic(analyses.compactMap { meanEnergy($0, rank: o.defaultRank > 0 ? o.defaultRank : p.analysisRank) })
        var rankRows: [RankRow] = []
        let studyRanks = Array(Set(p.ranks + (o.defaultRank > 0 && !p.ranks.isEmpty ? [o.defaultRank] : []))).sorted()
        for r in studyRanks {
            var losses: [String: Statistic] = [:]
            for sweep in o.studentSweeps {
                let folders = r == o.defaultRank && !p.ranks.contains(r)
                    ? sweep.seedRuns.map(\.folder)
                    : o.rankRuns.filter { $0.initialisation == sweep.method && $0.rank == r }.map(\.folder)
                if let s = Statistic(folders.compactMap { RunStages.lastMetric($0) }) { losses[sweep.method] = s }
            }
            rankRows.append(RankRow(rank: r, energy: Statistic(analyses.compactMap { meanEnergy($0, rank: r) }), finalValLoss: losses))
        }

        // Verdicts: the second initialisation against the first (svd-delta vs random by default) on each figure.
        var verdicts: [String: SeedComparison] = [:]
        let students = rows.dropFirst()
        if students.count >= 2, let a = students.dropFirst().first, let b = students.first {
            let pairs: [(String, Statistic?, Statistic?)] = [
                ("initial loss", a.initialLoss, b.initialLoss), ("final validation loss", a.finalValLoss, b.finalValLoss),
                ("exact match", a.exactMatch, b.exactMatch), ("distance to teacher ΔW", a.distance, b.distance),
            ]
            for (name, x, y) in pairs { if let x, let y { verdicts["\(a.method) vs \(b.method): \(name)"] = SeedComparison(x, y) } }
        }
        let finding: String = {
            guard students.count >= 2, let a = students.dropFirst().first, let b = students.first,
                  let v = verdicts["\(a.method) vs \(b.method): final validation loss"] else { return "one initialisation only" }
            let e = energyAtR.map { String(format: "ΔW keeps %.0f%% of its energy at rank %d", 100 * $0.mean, o.defaultRank) } ?? ""
            let word: String
            switch v.verdict {
            case .lower: word = "lower final validation loss than"
            case .higher: word = "higher final validation loss than"
            case .notDistinguishable: word = "a final validation loss not distinguishable from"
            case .tooFewSeeds: word = "(too few seeds to compare) a final validation loss vs"
            }
            return "\(a.method) students reach \(word) \(b.method) at equal budget (\(seeds.count) seeds, each at its own best LR); \(e)"
        }()

        let summary = Summary(command: command, seeds: seeds, budgetSteps: p.budgetSteps, equalBudget: equalBudget, rows: rows,
                              sweeps: sweeps, analysisRank: o.defaultRank, energyAtRank: energyAtR, relativeChange: relChange,
                              ranks: rankRows, verdicts: verdicts, finding: finding)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write([UInt8](try encoder.encode(summary)), to: (folder as NSString).appendingPathComponent("summary.json"))

        // Tables.
        func s(_ x: Statistic?, _ d: Int = 3) -> String { x?.formatted(d) ?? "–" }
        var table = MarkdownTable(["run", "LR (bracketed?)", "steps × tokens/step", "initial loss", "final train", "final val",
                                   "exact match", "steps to target (reached)", "distance to teacher ΔW", "cosine"])
        for r in rows {
            let budgets = Set(zip(r.steps, r.tokensPerStep).map { "\($0)×\($1)" }).sorted().joined(separator: ", ")
            table.add([r.method, String(format: "%.3g", r.learningRate) + (r.bracketed ? "" : " (edge)"),
                       budgets + (equalBudget ? "" : " ≠"), s(r.initialLoss), s(r.finalTrainLoss), s(r.finalValLoss), s(r.exactMatch),
                       s(r.stepsToTarget, 0) + " (\(r.reachedTarget)/\(seeds.count))", s(r.distance), s(r.cosine)])
        }
        var verdictTable = MarkdownTable(["comparison", "difference (a − b)", "Welch t", "p", "verdict"])
        for (k, v) in verdicts.sorted(by: { $0.key < $1.key }) {
            verdictTable.add([k, String(format: "%+.4f", v.difference), String(format: "%.2f", v.t), v.pCell, v.verdict.rawValue])
        }
        // A point's mean is over the seeds run at that rate: the sweep seed everywhere, every seed at the chosen rate
        // (chosen on the sweep seed), so the counts are shown — a 1-seed mean beside a 3-seed one is not a like comparison.
        var sweepTable = MarkdownTable(["method", "learning rates tried (mean final val loss, seeds)", "chosen", "note"])
        for sw in sweeps {
            let tried = sw.points.map { p in
                String(format: "%.3g ", p.learningRate) + (p.score.map { String(format: "(%.3f, n=%d)", $0.mean, $0.values.count) } ?? "(–)")
            }
            sweepTable.add([sw.method, tried.joined(separator: ", "), String(format: "%.3g", sw.bestLearningRate), sw.note])
        }
        var rankTable = MarkdownTable(["LoRA rank r", "ΔW energy at r"] + o.studentSweeps.map { "\($0.method) final val" })
        for r in rankRows { rankTable.add(["\(r.rank)", s(r.energy)] + o.studentSweeps.map { s(r.finalValLoss[$0.method]) }) }

        // Figures: each method's sweep; validation loss over steps (mean ± std band); the rank study.
        let colors = ["#222222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        var sweepChart = LineChart(title: "Learning-rate sweeps (each method at its own best rate)", xLabel: "learning rate", yLabel: "final validation loss")
        sweepChart.logX = true
        for (i, sw) in sweeps.enumerated() {
            var series = LineChart.Series(label: sw.method, color: colors[i % colors.count],
                                          points: sw.points.compactMap { pt in pt.score.map { (pt.learningRate, $0.mean) } }, markers: true)
            series.band = sw.points.compactMap { pt in pt.score.map { (pt.learningRate, $0.mean - $0.std, $0.mean + $0.std) } }
            sweepChart.series.append(series)
        }
        var curveChart = LineChart(title: "Validation loss (mean ± std over \(seeds.count) seeds)", xLabel: "step", yLabel: "validation loss")
        for (i, sw) in sweeps.enumerated() {
            let curves = sw.seedRuns.map { RunStages.metricSeries($0.folder, key: "val_loss") }
            guard let steps = curves.first?.map(\.step) else { continue }
            var points: [(x: Double, y: Double)] = [], band: [(x: Double, lower: Double, upper: Double)] = []
            for (j, step) in steps.enumerated() {
                guard let st = Statistic(curves.compactMap { $0.count > j && $0[j].step == step ? $0[j].value : nil }) else { continue }
                points.append((Double(step), st.mean))
                band.append((Double(step), st.mean - st.std, st.mean + st.std))
            }
            var series = LineChart.Series(label: sw.method, color: colors[i % colors.count], points: points, markers: true)
            series.band = band
            curveChart.series.append(series)
        }
        var charts = [sweepChart.render(), curveChart.render()]
        if !rankRows.isEmpty {
            var rankChart = LineChart(title: "Rank study: final validation loss by LoRA rank", xLabel: "LoRA rank r", yLabel: "final validation loss")
            rankChart.logX = true
            rankChart.xTicks = rankRows.map { Double($0.rank) }
            for (i, sw) in o.studentSweeps.enumerated() {
                var series = LineChart.Series(label: sw.method, color: colors[(i + 1) % colors.count],
                                              points: rankRows.compactMap { r in r.finalValLoss[sw.method].map { (Double(r.rank), $0.mean) } }, markers: true)
                series.band = rankRows.compactMap { r in r.finalValLoss[sw.method].map { (Double(r.rank), $0.mean - $0.std, $0.mean + $0.std) } }
                rankChart.series.append(series)
            }
            charts.append(rankChart.render())
        }

        let setup = [
            "Seeds: \(seeds.map(String.init).joined(separator: ", ")) — every compared run repeats over them; each seed's students learn from that seed's teacher.",
            "Budget: " + (p.budgetSteps.map { "\($0) optimizer steps for the teacher and every student" } ?? "each config's own steps")
                + (equalBudget ? " (checked: all equal)" : " — NOT equal across runs (marked ≠)") + ".",
            "Learning rates: each method's own sweep, extended past an edge while its best sits there (up to \(p.maxExtensions) steps per side).",
            "ΔW of the teacher: mean energy at rank \(o.defaultRank) " + s(energyAtR) + ", mean ‖ΔW‖/‖W‖ " + s(relChange)
                + ((relChange?.mean ?? 0) > 0.3
                    ? " — large: at this budget the best teacher LR re-trains the layers rather than fine-tunes them, so the spectrum describes a re-training-sized update (fine-tuning-sized updates are ≪ 1; a lower LR with a longer budget would give one)."
                    : " (fine-tuning-sized updates are ≪ 1)."),
        ]
        let caveats = """
            What this does not show: a small byte-level model on an arithmetic SFT set; \(seeds.count) seeds give a coarse spread (a \
            "not distinguishable" verdict means Welch's two-sided test gives p ≥ 0.05 — with 2–4 degrees of freedom that needs \
            |t| of about 2.8–4.3 — not that the methods are equal); \
            the teacher is a full fine-tune that also moves embeddings and norms, which no LoRA student can follow.
            """
        var md = "# ΔW spectrum and SVD-initialised LoRA students\n\n**Finding:** \(finding)\n\n"
        if let command { md += "Command: `\(command)`\n\n" }
        md += setup.map { "- \($0)" }.joined(separator: "\n") + "\n\n## Teacher and students (mean ± std over seeds)\n\n" + table.markdown
        md += "\n## Verdicts\n\n" + verdictTable.markdown + "\n## Learning-rate sweeps\n\n" + sweepTable.markdown
        if !rankRows.isEmpty { md += "\n## Rank study\n\n" + rankTable.markdown }
        md += "\nPer-seed details (curves, per-module distances, ΔW spectra): " + seeds.map { "[seed \($0)](seed-\($0)/report.html)" }.joined(separator: ", ") + "\n\n" + caveats + "\n"
        try AtomicFile.write(Array(md.utf8), to: (folder as NSString).appendingPathComponent("report.md"))

        var html = HTMLPage.head(title: "Subspace: ΔW and LoRA students") + """
            <h1>ΔW spectrum and SVD-initialised LoRA students</h1>
            <p><b>Finding:</b> \(escapeXML(finding))</p>

            """
        if let command { html += "<p class=\"note\">Command: <code>\(escapeXML(command))</code></p>\n" }
        html += "<ul>" + setup.map { "<li>\(escapeXML($0))</li>" }.joined() + "</ul>\n<h2>Teacher and students (mean ± std over seeds)</h2>\n" + table.html
        html += "<h2>Verdicts</h2>\n" + verdictTable.html + "<h2>Learning-rate sweeps</h2>\n" + sweepTable.html
        if !rankRows.isEmpty { html += "<h2>Rank study</h2>\n" + rankTable.html }
        for chart in charts { html += "<figure>\(chart.element)</figure>\n" }
        html += "<p>Per-seed details: " + seeds.map { "<a href=\"seed-\($0)/report.html\">seed \($0)</a>" }.joined(separator: ", ") + "</p>\n"
        html += "<p class=\"note\">\(escapeXML(caveats))</p>" + HTMLPage.end
        let path = (folder as NSString).appendingPathComponent("report.html")
        try AtomicFile.write(Array(html.utf8), to: path)
        try StudyFinding(study: "delta-students", title: "ΔW spectrum and SVD-initialised LoRA students", report: "report/report.html",
                         finding: finding, command: command).write(to: p.output)
        return path
    }
}
