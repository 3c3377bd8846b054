# The sender of drift alerts (verified by e-mail or by its domain's DNS records).
resource "aws_sesv2_email_identity" "sender" {
  email_identity = var.sender
}
