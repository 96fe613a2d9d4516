"""Google Analytics 4: pull only (the Data API's reports); GA4 sends no webhooks, so a `ga4` source
takes no secrets and its webhook URL refuses everything."""

from connectors.ga4.sync import API as api
from connectors.ga4.webhooks import normalize, parse, sample, verify

name = "ga4"
webhooks = False
