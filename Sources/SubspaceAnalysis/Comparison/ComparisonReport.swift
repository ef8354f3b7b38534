import Foundation
import SubspaceCore
import SubspaceDistributed

/// The files a comparison writes.
public struct ComparisonFiles: Sendable {
    public var json: String
    public var markdown: String
    public var html: String
    /// The SVG plots, also inlined in the HTML.
    public var plots: [String]
}

/// Writes a comparison as `comparison.json`, `report.md`, a self-contained `report.html` (SVG plots
/// inline, no external resources) and the plots as SVG files.
public enum ComparisonReport {
    @discardableResult
    public static func write(_ comparison: Comparison, to folder: String) throws -> ComparisonFiles {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let analysis = try comparison.analysis.map { try DeltaAnalysisWriter.read(folder: $0) }
        let analysisPlots: [(String, String)] = comparison.analysis.map { folder in
            DeltaAnalysisFiles(folder: folder).plots.compactMap { p in
                (try? String(contentsOfFile: p, encoding: .utf8)).map { ((p as NSString).lastPathComponent, $0) }
            }
        } ?? []

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let json = path("comparison.json")
        try AtomicFile.write(Array(try encoder.encode(comparison)) + Array("\n".utf8), to: json)
        let figures = plots(comparison)
        var written: [String] = []
        for (name, svg) in figures {
            try AtomicFile.write(Array(svg.xml.utf8), to: path(name))
            written.append(path(name))
        }
        let md = path("report.md"), html = path("report.html")
        try AtomicFile.write(Array(markdown(comparison, analysis: analysis, plotNames: figures.map(\.name)).utf8), to: md)
        try AtomicFile.write(Array(self.html(comparison, analysis: analysis, plots: figures.map(\.svg),
                                             analysisPlots: analysisPlots).utf8), to: html)
        return ComparisonFiles(json: json, markdown: md, html: html, plots: written)
    }

    // MARK: Plots

    /// Loss curves, distance per layer (or module), and for a rank study the figures against r.
    public static func plots(_ c: Comparison) -> [(name: String, svg: SVGDocument)] {
        var out: [(String, SVGDocument)] = [("loss_curves.svg", lossCurves(c).render())]
        if !c.distances.isEmpty { out.append(("distance.svg", distanceChart(c).render())) }
        if c.studentRanks.count > 1 {
            out.append(("rank_study_loss.svg", rankStudy(c, value: \.finalValLoss, label: "final validation loss").render()))
            out.append(("rank_study_distance.svg", rankStudy(c, value: \.distance, label: "‖ΔW_t − ΔW_s‖ / ‖ΔW_t‖").render()))
        }
        return out
    }

    static func lossCurves(_ c: Comparison) -> LineChart {
        var chart = LineChart(title: "Loss curves", xLabel: "step", yLabel: "loss")
        for (i, run) in c.runs.enumerated() {
            let color = Palette.color(i)
            let train = thin(run.trainCurve.map { (x: $0[0], y: $0[1]) }, to: 1500)
            chart.series.append(.init(label: "\(run.name) train", color: color, points: train, width: 1.2, opacity: 0.85))
            chart.series.append(.init(label: "\(run.name) val", color: color, points: run.valCurve.map { (x: $0[0], y: $0[1]) },
                                      dash: "6 3", width: 2, markers: true))
        }
        if let target = c.targetValLoss { chart.horizontalLines = [(target, String(format: "target %.4f", target))] }
        chart.notes = ["solid: training loss", "dashed: validation loss"]
        return chart
    }

    static func distanceChart(_ c: Comparison) -> BarChart {
        let students = c.students
        let perModule = Set(c.distances.map(\.module)).count <= 40
        var chart = BarChart(title: "Distance to the teacher's ΔW" + (perModule ? " per module" : " per layer"),
                             xLabel: perModule ? "module (layer · kind)" : "layer",
                             yLabel: "‖ΔW_t − ΔW_s‖_F / ‖ΔW_t‖_F")
        if perModule {
            var modules: [(String, String)] = []
            for d in c.distances where !modules.contains(where: { $0.0 == d.module }) { modules.append((d.module, "L\(d.layer) \(d.kind.rawValue)")) }
            chart.categories = modules.map(\.1)
            chart.series = students.enumerated().map { i, s in
                .init(label: s.name, color: Palette.color(i + 1), values: modules.map { m in
                    c.distances.first { $0.student == s.name && $0.module == m.0 }?.distance
                })
            }
        } else {
            let layers = Set(c.layerDistances.map(\.layer)).sorted()
            chart.categories = layers.map(String.init)
            chart.series = students.enumerated().map { i, s in
                .init(label: s.name, color: Palette.color(i + 1), values: layers.map { l in
                    c.layerDistances.first { $0.student == s.name && $0.layer == l }?.distance
                })
            }
        }
        chart.horizontalLines = [(1, "1 = a zero adapter")]
        return chart
    }

    /// A figure against LoRA rank, one line per student family (its name without an `-rN` suffix).
    static func rankStudy(_ c: Comparison, value: KeyPath<RunSummary, Double?>, label: String) -> LineChart {
        var chart = LineChart(title: "Rank study: \(label) against r", xLabel: "LoRA rank r", yLabel: label)
        let ranks = c.studentRanks.map(Double.init)
        chart.logX = (ranks.last ?? 1) / max(ranks.first ?? 1, 1) >= 8
        chart.xTicks = ranks
        if let low = ranks.first, let high = ranks.last {
            chart.xRange = chart.logX ? (low / 1.2)...(high * 1.2) : (low - (high - low) * 0.05)...(high + (high - low) * 0.05)
        }
        var families: [String] = []
        for s in c.students where !families.contains(family(s.name)) { families.append(family(s.name)) }
        for (i, f) in families.enumerated() {
            let points = c.students.filter { family($0.name) == f }
                .compactMap { s in s[keyPath: value].map { (x: Double(s.loraRank ?? 0), y: $0) } }
                .sorted { $0.x < $1.x }
            chart.series.append(.init(label: f, color: Palette.color(i + 1), points: points, markers: true))
        }
        if value == \RunSummary.finalValLoss, let teacher = c.runs.first?.finalValLoss {
            chart.horizontalLines = [(teacher, String(format: "teacher %.4f", teacher))]
        }
        return chart
    }

    /// A student's name without a trailing rank (`svd-r8` → `svd`), to group a rank study's lines.
    static func family(_ name: String) -> String {
        let stripped = name.replacingOccurrences(of: "[-_.]?(r|rank)[0-9]+$", with: "", options: .regularExpression)
        return stripped.isEmpty ? name : stripped
    }

    static func thin(_ points: [(x: Double, y: Double)], to limit: Int) -> [(x: Double, y: Double)] {
        guard points.count > limit else { return points }
        let stride = Double(points.count - 1) / Double(limit - 1)
        return (0..<limit).map { points[Int((Double($0) * stride).rounded())] }
    }

    // MARK: Tables

    public static func runTable(_ c: Comparison) -> MarkdownTable {
        var table = MarkdownTable(["run", "r", "alpha", "initial loss", "final train loss", "final val loss", "exact match",
                                   "steps to target", "distance", "cosine", "‖ΔW_s‖/‖ΔW_t‖"])
        for r in c.runs {
            let em = r.exactMatch.map { String(format: "%.3f", $0) + (r.exactMatchExamples.map { " (\($0))" } ?? "") } ?? "—"
            let steps = r.stepsToTarget.map(String.init) ?? (c.targetValLoss == nil ? "—" : "not reached")
            table.add([r.name, r.loraRank.map(String.init) ?? (r.role == "teacher" ? "full" : "—"),
                       r.loraAlpha.map { Ticks.label($0) } ?? "—", f4(r.initialLoss), f4(r.finalTrainLoss), f4(r.finalValLoss),
                       em, steps, f4(r.distance), f4(r.cosine), f4(r.normRatio)])
        }
        return table
    }

    public static func moduleTable(_ c: Comparison) -> MarkdownTable {
        let students = c.students.map(\.name)
        var table = MarkdownTable(["module", "‖ΔW_teacher‖_F"] + students.map { "distance \($0)" })
        var modules: [String] = []
        for d in c.distances where !modules.contains(d.module) { modules.append(d.module) }
        for m in modules {
            let teacher = c.distances.first { $0.module == m }?.teacherNorm
            table.add([m, e3(teacher)] + students.map { s in f4(c.distances.first { $0.module == m && $0.student == s }?.distance) })
        }
        return table
    }

    static func header(_ c: Comparison) -> [String] {
        var lines = ["base: `\(c.base)`", "teacher (full fine-tuning): `\(c.teacher)`"]
        lines += c.students.map { "student `\($0.name)`: `\($0.folder)` (r = \($0.loraRank ?? 0), alpha = \(Ticks.label($0.loraAlpha ?? 0)), scale = \(Ticks.label($0.loraScale ?? 0)))" }
        lines.append("target validation loss: " + (c.targetValLoss.map { String(format: "%.4f", $0) } ?? "none") + " — \(c.targetRule)")
        if c.studentRanks.count > 1 { lines.append("rank study: students at r ∈ {\(c.studentRanks.map(String.init).joined(separator: ", "))}, rows ordered by r") }
        return lines
    }

    static let explanation = "Initial loss is the training loss of step 1; steps to target is the first evaluation step whose validation loss reaches the target; distance is ‖ΔW_teacher − ΔW_student‖_F / ‖ΔW_teacher‖_F with ΔW_student = scale·B·A, pooled over the modules the student adapts (1 is what a zero adapter scores)."

    public static func markdown(_ c: Comparison, analysis: DeltaAnalysis?, plotNames: [String]) -> String {
        var md = "# Teacher against LoRA students\n\n" + header(c).map { "- \($0)\n" }.joined() + "\n"
        md += explanation + "\n\n## Runs\n\n" + runTable(c).markdown + "\n"
        md += plotNames.map { "![\($0)](\($0))\n\n" }.joined()
        md += "## Distance per module\n\n" + moduleTable(c).markdown
        if let analysis {
            md += "\n## ΔW of the teacher (rank R = \(analysis.rank), \(analysis.method.rawValue) SVD)\n\n"
            md += DeltaAnalysisWriter.kindTable(analysis).markdown
            if let folder = c.analysis { md += "\nPlots and per-module figures: `\(folder)`\n" }
        }
        return md
    }

    public static func html(_ c: Comparison, analysis: DeltaAnalysis?, plots: [SVGDocument], analysisPlots: [(String, String)]) -> String {
        var h = HTMLPage.head(title: "Subspace: teacher against LoRA students") + "<h1>Teacher against LoRA students</h1>\n"
        h += "<ul>\n" + header(c).map { "<li>\(inlineCode($0))</li>\n" }.joined() + "</ul>\n"
        h += "<p class=\"note\">\(escapeXML(explanation))</p>\n<h2>Runs</h2>\n" + runTable(c).html
        for svg in plots { h += "<figure>\n\(svg.element)</figure>\n" }
        h += "<h2>Distance per module</h2>\n" + moduleTable(c).html
        if let analysis {
            h += "<h2>ΔW of the teacher (rank R = \(analysis.rank), \(escapeXML(analysis.method.rawValue)) SVD)</h2>\n"
            h += "<p class=\"note\">Energy at rank R is Σ_{i≤R} σᵢ² / Σ σᵢ²; error@R is √(1 − energy); rK is the smallest rank keeping K% of the energy.</p>\n"
            h += DeltaAnalysisWriter.kindTable(analysis).html
            for (_, svg) in analysisPlots { h += "<figure>\n\(stripDeclaration(svg))</figure>\n" }
        }
        return h + HTMLPage.end
    }

    /// Escapes text and turns `code` spans into <code>.
    static func inlineCode(_ s: String) -> String {
        let parts = s.components(separatedBy: "`")
        return parts.enumerated().map { i, p in i % 2 == 1 ? "<code>\(escapeXML(p))</code>" : escapeXML(p) }.joined()
    }

    /// An SVG file's markup without its XML declaration, for inlining into HTML.
    static func stripDeclaration(_ svg: String) -> String {
        guard svg.hasPrefix("<?xml"), let end = svg.range(of: "?>") else { return svg }
        return String(svg[end.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
    }
}

extension RunComparison {
    /// Compares and, on rank 0 (or without a communicator), writes the outputs into `output`.
    public static func run(_ options: ComparisonOptions, output: String, communicator: (any Communicator)? = nil)
        throws -> (comparison: Comparison, files: ComparisonFiles?) {
        let comparison = try compare(options, communicator: communicator)
        guard (communicator?.rank ?? 0) == 0 else { return (comparison, nil) }
        return (comparison, try ComparisonReport.write(comparison, to: output))
    }
}
