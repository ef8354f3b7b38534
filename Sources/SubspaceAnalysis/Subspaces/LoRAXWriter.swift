import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// The files a transfer writes into its output folder: the target's PEFT adapter
/// (`adapter_config.json`, `adapter_model.safetensors`) and the report beside it.
public struct LoRAXFiles: Sendable {
    public var folder: String
    public var json: String
    public var markdown: String
    public var html: String
    public var plots: [String]

    public init(folder: String) {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        self.folder = folder
        json = path("transfer.json")
        markdown = path("report.md")
        html = path("report.html")
        plots = LoRAXWriter.plotNames.map(path)
    }

    public var all: [String] {
        [(folder as NSString).appendingPathComponent(PEFTAdapter.configName),
         (folder as NSString).appendingPathComponent(PEFTAdapter.weightsName), json, markdown, html] + plots
    }
}

/// Writes a transfer's adapter, `transfer.json`, `report.md`, a self-contained `report.html` (SVG inline)
/// and the SVG plots, each file atomically.
public enum LoRAXWriter {
    static let plotNames = ["similarity_u.svg", "similarity_v.svg", "similarity_heatmap.svg"]

    @discardableResult
    public static func write(_ outcome: LoRAXOutcome, to folder: String) throws -> LoRAXFiles {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let files = LoRAXFiles(folder: folder)
        try PEFTAdapter.save(outcome.adapter, model: outcome.targetConfig, to: folder, baseModel: outcome.report.targetModel)
        try AtomicFile.write(Array(try json(outcome.report).utf8), to: files.json)
        let svgs = plots(outcome.report)
        for (path, svg) in zip(files.plots, svgs) { try AtomicFile.write(Array(svg.xml.utf8), to: path) }
        try AtomicFile.write(Array(markdown(outcome.report).utf8), to: files.markdown)
        try AtomicFile.write(Array(html(outcome.report, plots: svgs).utf8), to: files.html)
        return files
    }

    public static func json(_ report: LoRAXReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }

    public static func read(folder: String) throws -> LoRAXReport {
        let path = LoRAXFiles(folder: folder).json
        do { return try JSONDecoder().decode(LoRAXReport.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw AnalysisError(file: path, "cannot read a transfer report: \(error)")
        }
    }

    // MARK: Plots

    /// φ_U (or φ_V) against layer per module kind, each kind's chance level dotted.
    public static func similarityChart(_ report: LoRAXReport, side: String) -> LineChart {
        let u = side == "U"
        var chart = LineChart(title: "Subspace similarity φ_\(side) per layer (\(u ? "output" : "input") side) against chance",
                              xLabel: "layer", yLabel: "φ_\(side) = ‖\(side)_tᵀ·E·\(side)_s‖²_F / k")
        chart.yRange = 0...1.02
        let kinds = ModuleKind.allCases.filter { k in report.modules.contains { $0.kind == k } }
        for (c, kind) in kinds.enumerated() {
            let ms = report.modules.filter { $0.kind == kind }.sorted { $0.layer < $1.layer }
            let color = Palette.color(c)
            chart.series.append(.init(label: kind.rawValue, color: color,
                                      points: ms.map { (Double($0.layer), u ? $0.phiU : $0.phiV) }, markers: true))
            chart.series.append(.init(label: "\(kind.rawValue) chance", color: color,
                                      points: ms.map { (Double($0.layer), u ? $0.chanceU : $0.chanceV) }, dash: "2 3", width: 1.2, inLegend: false))
        }
        let layers = Set(report.modules.map(\.layer)).sorted()
        chart.xTicks = layers.map(Double.init)
        if let t = report.threshold { chart.horizontalLines = [(t, "threshold \(Ticks.label(t))")] }
        chart.notes = ["solid: φ", "dotted: chance k/d"]
        return chart
    }

    /// ψ = (φ − chance)/(1 − chance), the smaller of the two sides, per layer and kind: 0 at chance, 1 identical.
    public static func heatmap(_ report: LoRAXReport) -> Heatmap {
        let kinds = ModuleKind.allCases.filter { k in report.modules.contains { $0.kind == k } }
        let layers = Set(report.modules.map(\.layer)).sorted()
        var map = Heatmap(title: "Similarity above chance, min over sides: (φ − chance)/(1 − chance)", xLabel: "module",
                          yLabel: "layer", valueLabel: "ψ")
        map.columnLabels = kinds.map(\.rawValue)
        map.rowLabels = layers.map { "layer \($0)" }
        map.values = layers.map { l in
            kinds.map { k in report.modules.first { $0.layer == l && $0.kind == k }.map(normalised) }
        }
        return map
    }

    static func normalised(_ m: ModuleTransfer) -> Double {
        func one(_ phi: Double, _ c: Double) -> Double { c < 1 ? (phi - c) / (1 - c) : 1 }
        return min(one(m.phiU, m.chanceU), one(m.phiV, m.chanceV))
    }

    public static func plots(_ report: LoRAXReport) -> [SVGDocument] {
        [similarityChart(report, side: "U").render(), similarityChart(report, side: "V").render(), heatmap(report).render()]
    }

    // MARK: Text

    public static func moduleTable(_ report: LoRAXReport) -> MarkdownTable {
        var t = MarkdownTable(["module", "from", "k", "φ_U", "φ_V", "chance U/V", "φ/chance U/V", "threshold U/V", "transferred", "‖ΔW_t‖/‖ΔW_s‖", "note"])
        for m in report.modules {
            t.add([m.name, m.sources.joined(separator: ", ") + (m.adaptedRoles.count < m.roles.count ? " (\(m.adaptedRoles.joined(separator: "/")))" : ""),
                   String(m.k), f4(m.phiU), f4(m.phiV), "\(f4(m.chanceU)) / \(f4(m.chanceV))",
                   String(format: "%.2f / %.2f", m.ratioU, m.ratioV), "\(f4(m.thresholdU)) / \(f4(m.thresholdV))",
                   m.transferred ? "yes" : "no", f4(m.normRatio),
                   [m.projection == "mapped" ? "mapped \(m.sourceShape.map(String.init).joined(separator: "×")) → \(m.targetShape.map(String.init).joined(separator: "×"))" : nil,
                    m.rankEnergyKept.map { "rank-r keeps \(f4($0))" }, m.reason].compactMap { $0 }.joined(separator: "; ")])
        }
        return t
    }

    public static func kindTable(_ report: LoRAXReport) -> MarkdownTable {
        var t = MarkdownTable(["kind", "modules", "transferred", "mean φ_U", "mean φ_V", "mean chance U", "mean chance V", "mean ‖ΔW_t‖/‖ΔW_s‖"])
        for kind in ModuleKind.allCases {
            let ms = report.modules.filter { $0.kind == kind }
            guard !ms.isEmpty else { continue }
            func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
            t.add([kind.rawValue, String(ms.count), String(ms.filter(\.transferred).count), f4(mean(ms.map(\.phiU))), f4(mean(ms.map(\.phiV))),
                   f4(mean(ms.map(\.chanceU))), f4(mean(ms.map(\.chanceV))), f4(mean(ms.compactMap(\.normRatio)))])
        }
        return t
    }

    static func summaryLines(_ r: LoRAXReport) -> [String] {
        var lines = [
            "source model: `\(r.sourceModel)` (\(r.sourceFamily)); target model: `\(r.targetModel)` (\(r.targetFamily)); adapter: `\(r.adapter)`",
            "r = \(r.rank), alpha = \(Ticks.label(r.alpha)) (kept); target_modules: \(r.targetModules.joined(separator: ", "))",
            "subspace rank k: \(r.subspaceRank.map(String.init) ?? "half of each module's smallest dimension"); \(r.method.rawValue) SVD; \(r.worldSize) rank\(r.worldSize == 1 ? "" : "s")",
            "rule: \(r.thresholdRule)",
            "**\(r.transferredCount) of \(r.modules.count) mapped modules transferred**; \(r.unmapped.count) source module\(r.unmapped.count == 1 ? "" : "s")/roles unmapped",
            "modules not transferred are written with zero factors (ΔW_t = 0), so the adapter keeps its target_modules",
        ]
        lines.append(String(format: "wall time %.3f s; plan max/mean cost %.3f", r.wallSeconds, r.planMaxOverMean))
        return lines
    }

    public static func markdown(_ r: LoRAXReport) -> String {
        var md = "# LoRA-X transfer\n\n" + summaryLines(r).map { "- \($0)\n" }.joined() + "\n"
        md += "φ = ‖U_tᵀ·E·U_s‖²_F / k (1: identical subspaces; chance k/d for independent random ones). "
        md += "Equal shapes: B_t = U_t(U_tᵀB_s), A_t = (A_sV_t)V_tᵀ. Different shapes: least-squares maps M = U_tᵀ·E·U_s between the singular bases (see transfer.json `definitions`).\n\n"
        md += "## By module kind\n\n" + kindTable(r).markdown + "\n"
        md += plotNames.map { "![\($0)](\($0))\n\n" }.joined()
        md += "## Modules\n\n" + moduleTable(r).markdown + "\n"
        if !r.unmapped.isEmpty {
            var t = MarkdownTable(["source module", "role", "why not mapped"])
            for u in r.unmapped { t.add([u.module, u.role ?? "all", u.reason]) }
            md += "## Source modules without a place in the target\n\n" + t.markdown
        }
        return md
    }

    public static func html(_ r: LoRAXReport, plots: [SVGDocument]) -> String {
        var h = HTMLPage.head(title: "Subspace: LoRA-X transfer") + "<h1>LoRA-X transfer</h1>\n"
        h += "<ul>\n" + summaryLines(r).map { "<li>\(escapeXML($0.replacingOccurrences(of: "`", with: "").replacingOccurrences(of: "**", with: "")))</li>\n" }.joined() + "</ul>\n"
        h += "<h2>By module kind</h2>\n" + kindTable(r).html
        for svg in plots { h += "<figure>\n\(svg.element)\n</figure>\n" }
        h += "<h2>Modules</h2>\n" + moduleTable(r).html
        if !r.unmapped.isEmpty {
            var t = MarkdownTable(["source module", "role", "why not mapped"])
            for u in r.unmapped { t.add([u.module, u.role ?? "all", u.reason]) }
            h += "<h2>Source modules without a place in the target</h2>\n" + t.html
        }
        return h + HTMLPage.end
    }
}

extension LoRAXTransfer {
    /// The whole job for folders: every rank calls it; rank 0 writes the adapter and the report into
    /// `output` and returns them, the others nil.
    public static func transferFolders(
        sourceModel: String, targetModel: String, adapter: String, output: String, options: LoRAXOptions,
        communicator: any Communicator, onEvent: (LoRAXEvent) -> Void = { _ in }
    ) throws -> (outcome: LoRAXOutcome, files: LoRAXFiles)? {
        let inputs = try LoRAXInputs(sourceModel: sourceModel, targetModel: targetModel, adapter: adapter)
        guard let outcome = try run(inputs: inputs, options: options, communicator: communicator, onEvent: onEvent) else { return nil }
        return (outcome, try LoRAXWriter.write(outcome, to: output))
    }
}
