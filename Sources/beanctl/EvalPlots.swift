import BeanCapture
import BeanInspect
import Foundation

/// Writes the plots of an evaluation: roc.png, pr.png, confusion.png.
enum EvalPlots {
    static func write(report: EvalReport, summary: EvalReport.Summary, directory: String) throws {
        let f = summary.figures
        let plots: [(String, PlotCanvas)] = [
            ("roc.png", ReportPlots.roc(SorterMetrics.rocCurve(defect: f.defect, good: f.good), auc: f.auc)),
            ("pr.png", ReportPlots.precisionRecall(SorterMetrics.precisionRecallCurve(defect: f.defect, good: f.good))),
            ("confusion.png", ReportPlots.confusion(summary.confusion)),
        ]
        for (name, canvas) in plots {
            try ImageCodec.write(canvas.frame, to: (directory as NSString).appendingPathComponent(name))
        }
    }
}
