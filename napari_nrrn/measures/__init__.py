"""Layer 4: line profiles, IQR, PSNR/SSIM and classic baseline denoisers (no Qt)."""
