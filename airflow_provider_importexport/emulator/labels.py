"""Shipping labels and signature bar-code sheets as real PDF documents (fpdf2)."""

from __future__ import annotations

from fpdf import FPDF

from airflow_provider_importexport.manifest import ReturnAddress

AWS_FACILITY = ("AWS Import/Export", "2646 Rainier Ave South Suite 1060", "Seattle, WA 98144", "United States")


def _address_lines(address: ReturnAddress) -> list[str]:
    city_line = " ".join(filter(None, [address.city, address.state_or_province, address.postal_code]))
    parts = [address.name, address.company, address.street1, address.street2, address.street3, city_line]
    return [p for p in (*parts, address.country, address.phone_number) if p]


def _document(title: str) -> FPDF:
    pdf = FPDF(format="letter")
    pdf.set_title(title)
    pdf.set_creator("airflow-provider-importexport emulator")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
    return pdf


def _block(pdf: FPDF, heading: str, lines: list[str]) -> None:
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for line in lines:
        pdf.cell(0, 6, line.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _barcode(pdf: FPDF, text: str) -> None:
    """A Code 39 bar code of the job ids, as on the real label."""
    pdf.code39(f"*{text.upper()}*", x=pdf.l_margin, y=pdf.get_y(), w=1, h=18)
    pdf.ln(24)


def shipping_label(job_ids: list[str], address: ReturnAddress, tracking_number: str) -> bytes:
    """A pre-paid (UPS) label from the sender's address to the AWS facility for these jobs."""
    pdf = _document("UPS Prepaid Shipping Label")
    _block(pdf, "SHIP FROM", _address_lines(address))
    _block(pdf, "SHIP TO", list(AWS_FACILITY))
    _block(pdf, "JOBS", [f"JOBID {job_id}" for job_id in job_ids] + [f"Tracking: {tracking_number}"])
    _barcode(pdf, "-".join(job_ids))
    _block(
        pdf,
        "INSTRUCTIONS",
        [
            "Attach this label to the package. One device per job id above.",
            "Devices shipped without this label are returned unprocessed.",
        ],
    )
    return bytes(pdf.output())


def job_sheet(job_id: str, signature: str, *, bar_code_on_device: bool) -> bytes:
    """The job's instructions: EBS and Glacier devices carry the bar code, S3 devices a SIGNATURE file."""
    pdf = _document(f"AWS Import/Export job {job_id}")
    _block(pdf, "JOB", [f"JOBID {job_id}", f"Signature: {signature}"])
    _barcode(pdf, job_id)
    if bar_code_on_device:
        steps = ["Print this page and tape the bar code to the device."]
    else:
        steps = ["Write the job's SignatureFileContents to a file named SIGNATURE", "in the root folder of the device."]
    _block(pdf, "INSTRUCTIONS", [*steps, "Ship the device with the label from GetShippingLabel."])
    return bytes(pdf.output())
